from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest
import torch

import monai_srb.cli as cli
from monai_srb.blocks import SpectralResidualBlock
from monai_srb.export import OnnxPredictor, export_onnx, export_torchscript, matmul_dft, set_fft_impl_
from monai_srb.nets import SRBDenseNet121, SRBUNet
from monai_srb.spectral import FourierTransform

SMALL = (4, 4, 8, 8, 16, 4)
ALL_UP = [f"before_up{n}" for n in (1, 2, 3, 4)]

# (name, network factory, example input shape)
CASES = [
    ("unet_4srb_f", lambda: SRBUNet(2, 3, 2, features=SMALL, srb_positions=ALL_UP), (2, 3, 48, 32)),
    ("unet_srb_a", lambda: SRBUNet(2, 3, 2, features=SMALL, block="srb_aom", spatial_size=(48, 32)), (2, 3, 48, 32)),
    ("densenet_2srb_f", lambda: SRBDenseNet121(2, 1, 14, spatial_size=64), (2, 1, 64, 64)),
    (
        "unet3d_srb_f",
        lambda: SRBUNet(3, 1, 2, features=SMALL, srb_positions=["before_up4", "after_up2"]),
        (1, 1, 32, 32, 16),
    ),
]


def _trained_looking(factory):
    torch.manual_seed(0)
    net = factory()
    for m in net.modules():  # move the blocks off the identity so the spectral path is exercised
        if hasattr(m, "alpha"):
            m.alpha.data.fill_(0.5)
    return net.eval()


# the exports that take longest (DenseNet-121's graph): run with the slow tests
SLOW_CASES = {"densenet_2srb_f"}


@pytest.mark.parametrize(
    "name,factory,shape",
    [pytest.param(*c, marks=pytest.mark.slow if c[0] in SLOW_CASES else ()) for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_onnx_and_torchscript_match_eager(tmp_path, name, factory, shape):
    net = _trained_looking(factory)
    x = torch.randn(shape)
    with torch.no_grad():
        expected = net(x)
    onnx_path = export_onnx(net, str(tmp_path / f"{name}.onnx"), x)
    got = OnnxPredictor(onnx_path)(torch.cat([x, x[:1]]))
    assert got.shape[0] == shape[0] + 1  # dynamic batch
    torch.testing.assert_close(torch.from_numpy(got[: shape[0]]), expected, atol=1e-4, rtol=0)
    ts_path = export_torchscript(net, str(tmp_path / f"{name}.ts"), x)
    extra = {"metadata.json": ""}
    loaded = torch.jit.load(ts_path, _extra_files=extra)
    torch.testing.assert_close(loaded(x), expected, atol=1e-4, rtol=0)
    assert json.loads(extra["metadata.json"])["input_shape"] == ["batch"] + list(shape[1:])
    # the export switched SRB_F to DFT matmuls only while exporting
    assert all(m.impl == "fft" for m in net.modules() if isinstance(m, FourierTransform))


# what an earlier export left beside model.onnx: nothing, or its external-data file
SIDECARS = [("no_earlier_export", None), ("an_earlier_exports_data", b"weights of an earlier, larger export")]


@pytest.mark.parametrize("name,stale", SIDECARS, ids=[c[0] for c in SIDECARS])
def test_onnx_export_leaves_only_the_model_file(tmp_path, name, stale):
    net = _trained_looking(lambda: torch.nn.Sequential(SpectralResidualBlock(2, 3, reduction=3)))
    if stale is not None:
        (tmp_path / "model.onnx.data").write_bytes(stale)
    path = export_onnx(net, str(tmp_path / "model.onnx"), (1, 3, 16, 8))
    # the weights are inside model.onnx: no model.onnx.data that could be copied with it or be taken for its own
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx"]
    x = torch.randn(3, 3, 16, 8)
    with torch.no_grad():
        torch.testing.assert_close(torch.from_numpy(OnnxPredictor(path)(x)), net(x), atol=1e-4, rtol=0)


def test_onnx_rejects_a_size_it_cannot_take(tmp_path):
    net = _trained_looking(lambda: torch.nn.Sequential(SpectralResidualBlock(2, 3, reduction=3)))
    path = export_onnx(net, str(tmp_path / "m.onnx"), (1, 3, 48, 32))
    with pytest.raises(ValueError, match=r"exported for input shape \['batch', 3, 48, 32\], got \[1, 3, 64, 64\]"):
        OnnxPredictor(path)(torch.randn(1, 3, 64, 64))
    with pytest.raises(ValueError, match="does not exist"):
        OnnxPredictor(str(tmp_path / "missing.onnx"))


def test_matmul_dft_switch_and_restore():
    net = SRBUNet(2, 1, 2, features=SMALL, srb_positions=ALL_UP)
    with matmul_dft(net):
        assert {m.impl for m in net.modules() if isinstance(m, FourierTransform)} == {"matmul"}
    assert {m.impl for m in net.modules() if isinstance(m, FourierTransform)} == {"fft"}
    assert set_fft_impl_(net, "matmul") == 4
    with pytest.raises(ValueError, match=r"(?s)'dft'.*Available options"):
        set_fft_impl_(net, "dft")
    with pytest.raises(ValueError, match=r"(?s)'dft'.*Available options"):  # even where there is no SRB_F to set
        set_fft_impl_(torch.nn.Conv2d(1, 1, 1), "dft")


@pytest.mark.slow
def test_export_of_a_network_trained_one_epoch_by_a_bundle(tmp_path):
    from pathlib import Path

    from monai.bundle import run

    from monai_srb.export import main

    bundle = Path(__file__).resolve().parents[1] / "bundles" / "srb_3d_segmentation"
    out = tmp_path / "run"
    run(
        config_file=str(bundle / "configs" / "train.json"),
        meta_file=str(bundle / "configs" / "metadata.json"),
        logging_file=False,
        bundle_root=str(bundle),
        output_dir=str(out),
        epochs=1,
        synthetic_samples=4,
        synthetic_size=32,
        batch_size=1,
        num_samples=1,
    )
    ckpt = str(out / "models" / "model.pt")
    main(["--bundle_root", str(bundle), "--ckpt_file", ckpt, "--out_dir", str(tmp_path / "exp")])
    predictor = OnnxPredictor(str(tmp_path / "exp" / "model.onnx"))
    x = torch.randn(3, 1, 32, 32, 32)  # exported from a batch of 1: the batch must still be dynamic
    scripted = torch.jit.load(str(tmp_path / "exp" / "model.ts"))
    torch.testing.assert_close(torch.from_numpy(predictor(x)), scripted(x), atol=1e-4, rtol=0)


SKIN_BUNDLE = Path(__file__).resolve().parents[1] / "bundles" / "srb_skin_lesion_segmentation"
SKIN_SMALL = {"image_size": 64, "features": list(SMALL)}
# (name, overrides the training run stored beside its checkpoint, overrides given to the export)
TRAINED_AT_64 = [
    ("stored_by_the_run", SKIN_SMALL, []),
    ("given_on_the_command_line", None, ["--image_size", "64", "--features", "[4, 4, 8, 8, 16, 4]"]),
    ("command_line_wins", {**SKIN_SMALL, "image_size": 128}, ["--image_size=64"]),
]


def _bundle_network(bundle: Path, **overrides):
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config(str(bundle / "configs" / "train.json"))
    parser.update({"bundle_root": str(bundle), **overrides})
    return parser.get_parsed_content("network_def")


@pytest.mark.slow
@pytest.mark.parametrize("name,stored,cli", TRAINED_AT_64, ids=[c[0] for c in TRAINED_AT_64])
def test_export_of_a_network_trained_at_another_image_size(tmp_path, name, stored, cli):
    from monai_srb.export import main

    net = _trained_looking(lambda: _bundle_network(SKIN_BUNDLE, **SKIN_SMALL))
    models = tmp_path / "run" / "models"  # the bundle's output layout: <output_dir>/models/model.pt
    models.mkdir(parents=True)
    torch.save(net.state_dict(), models / "model.pt")
    if stored is not None:
        (models / "network_config.json").write_text(json.dumps({"overrides": stored}))
    output_dir, exported = str(tmp_path / "run"), str(tmp_path / "exp")
    main(["--bundle_root", str(SKIN_BUNDLE), "--output_dir", output_dir, "--out_dir", exported, *cli])
    x = torch.rand(3, 3, 64, 64)
    with torch.no_grad():
        expected = net(x)
    predictor = OnnxPredictor(str(tmp_path / "exp" / "model.onnx"))
    assert predictor.input_shape == [None, 3, 64, 64]
    torch.testing.assert_close(torch.from_numpy(predictor(x)), expected, atol=1e-4, rtol=0)


FOUR = ["before_up4", "before_up3", "before_up2", "before_up1"]
# (name, network factory, traced shape, further shapes the program must take; None: the size is fixed)
PT2_CASES = [
    ("srb_fft_unet", lambda: SRBUNet(2, 3, 2, features=(8, 8, 16, 32, 64, 8), srb_positions=FOUR), (1, 3, 64, 96),
     [(3, 3, 48, 80), (2, 3, 128, 32)]),
    pytest.param("srb_dct_unet", lambda: SRBUNet(2, 1, 2, features=(8, 8, 16, 32, 64, 8), block="srb_dct"),
                 (2, 1, 32, 32), [(1, 1, 64, 48)], marks=pytest.mark.slow),
    pytest.param("srb_fft_unet_3d", lambda: SRBUNet(3, 1, 2, features=(8, 8, 16, 32, 64, 8)), (1, 1, 32, 32, 32),
                 [(2, 1, 48, 32, 64)], marks=pytest.mark.slow),
    pytest.param("srb_aom_unet", lambda: SRBUNet(2, 1, 2, features=(8, 8, 16, 32, 64, 8), block="srb_aom",
                                                 spatial_size=32), (1, 1, 32, 32), None, marks=pytest.mark.slow),
]


@pytest.mark.parametrize("name,factory,shape,others", PT2_CASES, ids=["srb_fft_unet", "srb_dct_unet",
                                                                     "srb_fft_unet_3d", "srb_aom_unet"])
def test_pt2_program_matches_eager_at_other_sizes(tmp_path, name, factory, shape, others):
    from monai_srb.export import export_pt2

    torch.manual_seed(0)
    net = factory()
    with torch.no_grad():
        for n, p in net.named_parameters():
            if n.endswith("alpha"):
                p.fill_(0.5)
    path = export_pt2(net, str(tmp_path / "model.pt2"), shape, others or [])
    program = torch.export.load(path).module()
    for probe in [shape, *(others or [])]:
        x = torch.randn(probe)
        with torch.no_grad():
            torch.testing.assert_close(program(x), net(x), rtol=1e-4, atol=1e-4)
    if others is None:  # SRB_A: built for one size, so the program takes only that one (any batch)
        with torch.no_grad():
            program(torch.randn(3, *shape[1:]))
        with pytest.raises(AssertionError, match=r"Guard failed: x.size\(\)\[2\] == 32"):
            program(torch.randn(1, 1, 64, 64))


@pytest.mark.slow
def test_cli_format_pt2_writes_only_the_exported_program(tmp_path):
    from monai.bundle import ConfigParser

    from monai_srb.export import main

    bundle = Path(__file__).resolve().parents[1] / "bundles" / "srb_skin_lesion_segmentation"
    parser = ConfigParser()
    parser.read_config(str(bundle / "configs" / "train.json"))
    parser.update({"bundle_root": str(bundle), "output_dir": str(tmp_path / "run"), "image_size": 32,
                   "image_channels": 3})
    torch.save(parser.get_parsed_content("network_def").state_dict(), tmp_path / "model.pt")
    main(["--bundle_root", str(bundle), "--ckpt_file", str(tmp_path / "model.pt"), "--out_dir", str(tmp_path / "out"),
          "--format", "pt2", "--image_size", "32", "--image_channels", "3"])
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["model.pt2"]
    program = torch.export.load(str(tmp_path / "out" / "model.pt2")).module()
    assert program(torch.randn(3, 3, 64, 48)).shape == (3, 2, 64, 48)  # another batch and size than exported


CHEST_BUNDLE = SKIN_BUNDLE.parent / "srb_chest_xray_classification"


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> dict[str, str]:
    """
    Small checkpoints, as a training run leaves them (``model.pt``, ``network_config.json`` beside it), and files
    that are none: what the rows of ``BAD_EXPORT_ARGS`` name by ``{key}``.
    """
    root = tmp_path_factory.mktemp("checkpoints")
    runs = {
        "stored": (_bundle_network(SKIN_BUNDLE, **SKIN_SMALL), SKIN_SMALL),
        "bare": (_bundle_network(SKIN_BUNDLE, **SKIN_SMALL), None),
        "aom": (_bundle_network(SKIN_BUNDLE, **SKIN_SMALL, block="srb_aom"), {**SKIN_SMALL, "block": "srb_aom"}),
        "chest": (_bundle_network(CHEST_BUNDLE, image_size=32), {"image_size": 32}),
    }
    paths = {"tmp": str(root)}
    for key, (net, stored) in runs.items():
        (root / key).mkdir()
        torch.save(net.state_dict(), root / key / "model.pt")
        if stored is not None:
            (root / key / "network_config.json").write_text(json.dumps({"overrides": stored}))
        paths[key] = str(root / key / "model.pt")
    (root / "broken").mkdir()
    (root / "broken" / "network_config.json").write_text("[64]")
    (root / "broken" / "model.pt").write_bytes(Path(paths["stored"]).read_bytes())
    paths["broken"] = str(root / "broken" / "model.pt")
    (root / "train.log").write_text("epoch 1: loss 0.5\n")
    (root / "empty.pt").write_bytes(b"")
    paths.update(log=str(root / "train.log"), empty=str(root / "empty.pt"))
    return paths


SKIN = ["--bundle_root", str(SKIN_BUNDLE)]
TRAINED = [*SKIN, "--ckpt_file", "{stored}"]
# (name, arguments after --out_dir {out} --format ts, with {key} the paths of checkpoints, what stderr says)
BAD_EXPORT_ARGS = [
    ("batch_0", [*TRAINED, "--input_shape", "0", "3", "64", "64"],
     r"argument --input_shape: \[0, 3, 64, 64\]: the batch must be at least 1, got 0\."),
    ("no_batch", [*TRAINED, "--input_shape", "3", "64", "64"],
     r"argument --input_shape: \[3, 64, 64\] must be 4 numbers \(batch, channels, spatial_1, spatial_2\) for the "
     r"bundle's 2D network, got 3\."),
    ("below_the_minimum", [*TRAINED, "--input_shape", "1", "3", "1", "1"],
     r"argument --input_shape: \[1, 3, 1, 1\]: its spatial size is not one the bundle's image_size check takes: "
     r"override 'image_size' must be .*at least 32, each a multiple of 16; got \[1, 1\]"),
    ("not_a_multiple_of_16", [*TRAINED, "--input_shape", "1", "3", "40", "64"],
     r"argument --input_shape: \[1, 3, 40, 64\]: .*at least 32, each a multiple of 16; got \[40, 64\]"),
    ("negative_side", [*TRAINED, "--input_shape", "1", "3", "-64", "64"],
     r"argument --input_shape: \[1, 3, -64, 64\]: .*got \[-64, 64\]"),
    ("channels", [*TRAINED, "--input_shape", "1", "1", "64", "64"],
     r"argument --input_shape: \[1, 1, 64, 64\]: the network takes 3 channel\(s\) .*got 1\."),
    ("srb_a_at_another_size", [*SKIN, "--ckpt_file", "{aom}", "--input_shape", "1", "3", "32", "32"],
     r"argument --input_shape: \[1, 3, 32, 32\]: the network holds an SRB_A, built for the spatial size \[64, 64\] "
     r"\(image_size\) alone, got \[32, 32\]\."),
    ("below_what_the_network_takes", ["--bundle_root", str(CHEST_BUNDLE), "--ckpt_file", "{chest}",
                                      "--input_shape", "1", "1", "16", "16"],
     r"argument --input_shape: \[1, 1, 16, 16\]: the network cannot take it: SRBDenseNet121 needs an input of at "
     r"least 29 per spatial dim"),
    ("image_size_abc", [*TRAINED, "--image_size", "abc"],
     r"override 'image_size' must be a positive integer, at least 32, each a multiple of 16; got 'abc' \(str\)\."),
    ("unknown_block", [*TRAINED, "--block", "bogus"],
     r"the bundle's network_def cannot be built with the overrides \{.*'block': 'bogus'\}: Unsupported option "
     r"'bogus'"),
    ("override_without_value", [*TRAINED, "--image_size"], r"bundle override --image_size has no value"),
    ("ckpt_a_log_file", [*SKIN, "--ckpt_file", "{log}"],
     r"argument --ckpt_file: checkpoint file '[^']*train\.log' is not a torch checkpoint"),
    ("ckpt_empty", [*SKIN, "--ckpt_file", "{empty}"],
     r"argument --ckpt_file: checkpoint file '[^']*empty\.pt' is not a torch checkpoint .*\(EOFError\)"),
    ("ckpt_missing", [*SKIN, "--ckpt_file", "{tmp}/nope.pt"],
     r"argument --ckpt_file: checkpoint file '[^']*nope\.pt' does not exist\."),
    ("ckpt_a_folder", [*SKIN, "--ckpt_file", "{tmp}"], r"argument --ckpt_file: checkpoint file '[^']*' is a folder\."),
    ("default_ckpt_missing", [*SKIN, "--output_dir", "{tmp}/no_run"],
     r"argument --ckpt_file \(default: <output_dir>/models/model\.pt\): checkpoint file '[^']*no_run/models/model\.pt' "
     r"does not exist\."),
    ("ckpt_of_other_overrides", [*SKIN, "--ckpt_file", "{bare}", "--features", "[4, 4, 8, 8, 16, 4]"],
     r"argument --ckpt_file: checkpoint file '[^']*bare/model\.pt' does not fit the SRBUNet .* e\.g\. image_size "
     r".*size mismatch"),
    ("stored_overrides_broken", [*SKIN, "--ckpt_file", "{broken}"],
     r"[^ ]*broken/network_config\.json must hold \{'overrides': \{id: value\}\}, got \[64\]\."),
    ("bundle_root_missing", ["--bundle_root", "{tmp}/nope", "--ckpt_file", "{stored}"],
     r"argument --bundle_root: '[^']*nope' is not a folder"),
    ("bundle_root_without_configs", ["--bundle_root", "{tmp}", "--ckpt_file", "{stored}"],
     r"argument --bundle_root: '[^']*' is not a bundle folder, it has no configs/metadata\.json"),
    ("config_file_missing", [*TRAINED, "--config_file", "{tmp}/train.json"],
     r"argument --config_file: '[^']*train\.json' is not a file\."),
    ("config_file_a_log_file", [*TRAINED, "--config_file", "{log}"],
     r"bundle config '[^']*train\.log' is not a JSON or YAML file"),
    ("out_dir_a_file", [*TRAINED, "--out_dir", "{log}"],
     r"argument --out_dir: '[^']*train\.log' is a file, not a folder\."),
    ("unknown_format", [*TRAINED, "--format", "bogus"], r"argument --format: invalid choice: 'bogus'"),
]


@pytest.mark.parametrize("name,args,message", BAD_EXPORT_ARGS, ids=[c[0] for c in BAD_EXPORT_ARGS])
def test_a_bad_export_argument_is_a_usage_error_naming_it(checkpoints, tmp_path, capsys, name, args, message):
    out = tmp_path / "out"
    argv = ["export", "--out_dir", str(out), "--format", "ts", *[a.format(**checkpoints) for a in args]]
    with pytest.raises(SystemExit) as exit_:
        cli.main(argv)
    err = capsys.readouterr().err
    assert exit_.value.code == 2, err
    assert err.startswith("usage: monai-srb export") and re.search(f"monai-srb export: error: {message}", err), err
    assert not out.exists()  # refused before anything was written


ONNX_PACKAGES = ["onnx", "onnxruntime", "onnxscript"]


@pytest.mark.parametrize("missing", ONNX_PACKAGES)
def test_onnx_export_without_the_export_extra_says_what_to_install(checkpoints, tmp_path, monkeypatch, capsys, missing):
    from monai_srb.export import main

    tomllib = pytest.importorskip("tomllib" if sys.version_info >= (3, 11) else "tomli")
    extra = tomllib.loads((SKIN_BUNDLE.parents[1] / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert missing in {re.match(r"[\w-]+", req).group() for req in extra["export"]}  # the extra the message names
    monkeypatch.setitem(sys.modules, missing, None)  # `import missing` raises ModuleNotFoundError
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as exit_:
        main([*SKIN, "--ckpt_file", checkpoints["stored"], "--out_dir", str(out), "--format", "ts", "onnx"])
    err = capsys.readouterr().err
    assert exit_.value.code == 1
    assert err == (f"monai-srb export: error: {missing} is not installed; ONNX export and OnnxPredictor need it: "
                   'pip install "monai_srb[export]" (or export without ONNX: --format ts pt2).\n')
    assert not out.exists()
    with pytest.raises(ModuleNotFoundError, match=rf"{missing} is not installed; .*monai_srb\[export\]"):
        export_onnx(torch.nn.Conv2d(1, 1, 1), str(tmp_path / "m.onnx"), (1, 1, 8, 8))


def test_torchscript_export_needs_no_onnx(checkpoints, tmp_path, monkeypatch):
    from monai_srb.export import main

    for name in ONNX_PACKAGES:
        monkeypatch.setitem(sys.modules, name, None)
    main([*SKIN, "--ckpt_file", checkpoints["stored"], "--out_dir", str(tmp_path), "--format", "ts"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.ts"]
