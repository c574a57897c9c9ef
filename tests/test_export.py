from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

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


@pytest.mark.parametrize("name,factory,shape", CASES, ids=[c[0] for c in CASES])
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
    with pytest.raises(ValueError, match="does not exist"):
        main(["--bundle_root", str(bundle), "--ckpt_file", str(tmp_path / "nope.pt"), "--out_dir", str(tmp_path / "x")])


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


def test_export_names_the_mismatch_when_the_overrides_are_missing(tmp_path):
    from monai_srb.export import main

    net = _bundle_network(SKIN_BUNDLE, **SKIN_SMALL)
    torch.save(net.state_dict(), tmp_path / "model.pt")
    ckpt = str(tmp_path / "model.pt")
    args = ["--bundle_root", str(SKIN_BUNDLE), "--ckpt_file", ckpt, "--out_dir", str(tmp_path / "x")]
    with pytest.raises(ValueError, match=r"model.pt' does not fit the SRBUNet .* e.g. image_size .*size mismatch"):
        main([*args, "--features", "[4, 4, 8, 8, 16, 4]"])  # trained at 64, exported at the default 128
    with pytest.raises(SystemExit):
        main([*args, "--image_size"])  # an override without its value is a usage error


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
