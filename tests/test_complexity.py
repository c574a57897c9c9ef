from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from monai_srb.blocks.factory import block_names, make_block
from monai_srb.complexity import build_block, count_complexity, main, render_table
from monai_srb.spectral import AdaptiveOrthogonalTransform, CosineTransform


class Fn(nn.Module):
    def __init__(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x)


# (transform, input shape, expected FLOPs by hand: transforms * 5 * N * log2(N), halved for real in/out).
FFT_CASES = [
    (lambda x: torch.fft.rfftn(x, dim=(-2, -1)), (1, 1, 8, 8), 1 * 5 * 64 * 6 // 2),
    (lambda x: torch.fft.rfftn(x, dim=(-2, -1), norm="ortho"), (2, 3, 8, 8), 6 * 5 * 64 * 6 // 2),
    (lambda x: torch.fft.irfftn(torch.fft.rfftn(x, dim=(-2, -1)), s=(8, 8), dim=(-2, -1)), (1, 1, 8, 8), 2 * 960),
    (lambda x: torch.fft.rfft(x), (2, 3, 16), 6 * 5 * 16 * 4 // 2),
    (lambda x: torch.fft.fftn(x.to(torch.complex64), dim=(-2, -1)), (1, 1, 8, 8), 5 * 64 * 6),
    (lambda x: torch.fft.ifftn(x.to(torch.complex64), dim=(-3, -2, -1)), (1, 2, 4, 4, 4), 2 * 5 * 64 * 6),
    (lambda x: torch.fft.rfftn(x, dim=(-2, -1)), (1, 1, 1, 1), 0),
]

# (conv, input shape)
CONV_CASES = [
    (nn.Conv2d(4, 6, kernel_size=3, padding=1), (2, 4, 9, 7)),
    (nn.Conv2d(8, 4, kernel_size=1, groups=4, bias=False), (1, 8, 16, 9)),
    (nn.Conv3d(3, 5, kernel_size=3, stride=2), (1, 3, 9, 8, 7)),
]

# (transform, input shape, expected FLOPs: each mode product along an axis of length n is 2 * n * numel)
MATRIX_CASES = [
    (lambda: AdaptiveOrthogonalTransform((8, 8)), (1, 1, 8, 8), 2 * (2 * 8**3)),
    (lambda: AdaptiveOrthogonalTransform((16, 16)), (2, 3, 16, 16), 2 * (2 * 16**3) * 6),
    (lambda: AdaptiveOrthogonalTransform((8, 4)), (1, 2, 8, 4), (2 * 8 + 2 * 4) * 2 * 8 * 4),
    (lambda: AdaptiveOrthogonalTransform((4, 4, 4)), (1, 1, 4, 4, 4), 3 * (2 * 4**4)),
    (lambda: CosineTransform((8, 8)), (1, 1, 8, 8), 2 * (2 * 8**3)),
    (lambda: CosineTransform((6, 5, 4)), (1, 2, 6, 5, 4), (2 * 6 + 2 * 5 + 2 * 4) * 2 * 6 * 5 * 4),
]

BLOCK_CASES = [(name, (2, 8, 16, 16)) for name in block_names()] + [("srb_fft", (1, 4, 8, 8, 8))]


def flop_counter_mode_total(module: nn.Module, shape: tuple[int, ...]) -> int:
    module.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        module(torch.zeros(shape))
    return counter.get_total_flops()


@pytest.mark.parametrize("fn, shape, expected", FFT_CASES)
def test_fft_flops_follow_the_convention(fn, shape, expected):
    assert count_complexity(Fn(fn), shape).flops == expected


@pytest.mark.parametrize("conv, shape", CONV_CASES)
def test_conv_flops_match_flop_counter_mode(conv, shape):
    report = count_complexity(conv, shape)
    assert report.flops == flop_counter_mode_total(conv, shape) > 0
    assert set(report.per_op) == {"aten.convolution"}


@pytest.mark.parametrize("make, shape, expected", MATRIX_CASES)
def test_mode_product_flops_are_counted(make, shape, expected):
    assert count_complexity(make(), shape).flops == expected


def test_srb_fft_counts_the_ffts():
    block = make_block("srb_fft", 2, 8, spatial_size=(16, 16))
    report = count_complexity(block, (1, 8, 16, 16))
    one_way = 8 * 5 * 256 * 8 // 2  # 8 channels, N = 16 * 16, log2(N) = 8, real transform
    assert report.per_op["aten._fft_r2c"] == one_way
    assert report.per_op["aten._fft_c2r"] == one_way
    assert report.flops == flop_counter_mode_total(block, (1, 8, 16, 16)) + 2 * one_way
    assert report.per_module["SpectralResidualBlock"] == report.flops
    assert report.per_module["SpectralResidualBlock.phi.conv_reduce"] > 0
    # K' = 8 bottleneck channels (Re, Im of K = 4) on the one-sided 16 x 9 grid
    assert report.uncounted_elements["aten.relu_"] == 8 * 16 * 9


@pytest.mark.parametrize("name, shape", BLOCK_CASES)
def test_params_match_the_module(name, shape):
    block = make_block(name, len(shape) - 2, shape[1], spatial_size=shape[2:]).train()
    report = count_complexity(block, torch.randn(shape))
    assert report.params == sum(p.numel() for p in block.parameters())
    assert report.trainable_params == sum(p.numel() for p in block.parameters() if p.requires_grad)
    assert report.flops > 0
    assert report.macs == report.flops / 2
    assert block.training


# (block, spatial_dims, channels, size, groups): the block the cost table builds for that map
BUILD_CASES = [
    ("srb_fft", 2, 8, 16, 2),
    ("srb_aom", 2, 8, 12, None),
    ("srb_dct", 3, 4, 8, 1),
    ("nonlocal", 2, 8, 16, None),
    ("double_attention", 3, 8, 8, None),
]


@pytest.mark.parametrize("name, spatial_dims, channels, size, groups", BUILD_CASES)
def test_build_block_is_make_block_sized_for_the_map(name, spatial_dims, channels, size, groups):
    block = build_block(name, spatial_dims, channels, size, groups)
    x = torch.randn(1, channels, *(size,) * spatial_dims)
    assert block(x).shape == x.shape
    if name.startswith("srb_"):
        expected = make_block(name, spatial_dims, channels, spatial_size=(size,) * spatial_dims, groups=groups)
        assert block.phi.conv_reduce.groups == expected.phi.conv_reduce.groups
        assert [p.shape for p in block.parameters()] == [p.shape for p in expected.parameters()]


def test_render_table_as_markdown_and_csv():
    header, body = ["a", "b"], [["1", "x,y"], ["2", "z"]]
    assert render_table(header, body) == "| a | b |\n|---|---|\n| 1 | x,y |\n| 2 | z |"
    assert render_table(header, body, "csv") == 'a,b\n1,"x,y"\n2,z'
    with pytest.raises(ValueError, match="html"):
        render_table(header, body, "html")


def test_main_prints_the_cost_of_each_block(capsys):
    main(["--size", "16", "--channels", "8", "--format", "csv"])
    records = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [r["Block"] for r in records] == block_names()
    for r in records:
        block = build_block(r["Block"], 2, 8, 16)
        report = count_complexity(block, (1, 8, 16, 16))
        assert int(r["Params"]) == report.params and float(r["GFLOPs"]) == pytest.approx(report.flops / 1e9, rel=1e-3)
    assert float(records[0]["FFT GFLOPs"]) > 0 and float(records[3]["FFT GFLOPs"]) == 0  # srb_fft, nonlocal


def test_main_takes_3d_maps_and_a_subset_of_blocks(capsys):
    main(["--spatial_dims", "3", "--size", "8", "--channels", "4", "--blocks", "srb_fft", "srb_dct"])
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| srb_")]
    assert [row.split(" | ")[0] for row in rows] == ["| srb_fft", "| srb_dct"]


# (arguments, what stderr says): refused by argparse, before any block is built
BAD_COMPLEXITY_ARGS = [
    (["--channels", "3"],
     r"argument --channels: 3 is not divisible by --reduction 2 \(an SRB's bottleneck has channels / "
     r"reduction channels\): for --channels 3, --reduction may be one of 1, 3; for --reduction 2, --channels must be "
     r"a multiple of 2\."),
    (["--channels", "12", "--reduction", "5"], r"argument --channels: 12 is not divisible by --reduction 5 .*one of "
     r"1, 2, 3, 4, 6, 12;"),
    (["--channels", "8", "--groups", "3"],
     r"argument --groups: 3 does not divide the SRBs' bottleneck of --channels 8 / --reduction 2 = 4 channels: "
     r"--groups may be one of 1, 2, 4\."),
    (["--channels", "8", "--reduction", "4", "--groups", "4"], r"argument --groups: 4 does not divide .*= 2 channels: "
     r"--groups may be one of 1, 2\."),
    (["--size", "0"], r"argument --size: must be a positive integer, got 0\."),
    (["--size", "-16"], r"argument --size: must be a positive integer, got -16\."),
    (["--channels", "-8"], r"argument --channels: must be a positive integer, got -8\."),
    (["--reduction", "0"], r"argument --reduction: must be a positive integer, got 0\."),
    (["--groups", "two"], r"argument --groups: must be a positive integer, got 'two'\."),
]


@pytest.mark.parametrize("args, message", BAD_COMPLEXITY_ARGS, ids=[" ".join(c[0]) for c in BAD_COMPLEXITY_ARGS])
def test_a_bad_argument_is_a_usage_error_naming_it(capsys, args, message):
    with pytest.raises(SystemExit) as exit_:
        main(args)
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and re.search(f"monai-srb complexity: error: {message}", err), err


# (channels, reduction, blocks): widths an SRB takes, and attention blocks, which have none to check
REDUCTION_CASES = [
    (3, 3, ["srb_fft", "srb_dct"]),
    (12, 4, ["srb_fft", "srb_aom"]),
    (8, 1, ["srb_dct"]),
    (3, 2, ["nonlocal", "double_attention"]),
]


@pytest.mark.parametrize("channels, reduction, blocks", REDUCTION_CASES)
def test_main_builds_the_srbs_with_the_reduction_given(capsys, channels, reduction, blocks):
    main(["--channels", str(channels), "--reduction", str(reduction), "--size", "8", "--format", "csv",
          "--blocks", *blocks])
    records = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [r["Block"] for r in records] == blocks
    for r in records:
        block = build_block(r["Block"], 2, channels, 8, reduction=reduction)
        assert int(r["Params"]) == count_complexity(block, (1, channels, 8, 8)).params
        if r["Block"].startswith("srb_"):  # K = C / reduction bottleneck channels (Re and Im of each for the FFT)
            assert block.phi.conv_reduce.out_channels == channels * block.f.channel_factor // reduction
