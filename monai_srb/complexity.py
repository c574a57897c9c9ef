"""
Inference FLOPs and parameter counts of the blocks, and the paper's Table 3 (the cost one block adds to U-Net*).

Run ``monai-srb complexity`` for Table 3 (``--help`` for the options).

What is counted
---------------
Built on ``torch.utils.flop_counter.FlopCounterMode``, which sees every aten op of a forward pass and attributes
it to the module that ran it. It counts *FLOPs with multiplies and adds counted separately*: a matmul of
(M x K) by (K x N) is ``2 * M * N * K``, a convolution ``2 * output elements * in_channels / groups * kernel
volume`` (a conv bias is not counted). The MAC count is FLOPs / 2.

- Counted by FlopCounterMode: ``convolution`` (grouped too), ``mm`` / ``bmm`` / ``addmm`` / ``baddbmm`` and
  scaled dot-product attention. ``torch.matmul`` has no kernel of its own; it reaches dispatch as ``mm``
  or as ``expand`` + ``bmm`` (depending on the shapes and on ``requires_grad``), both counted, so each
  mode product along an axis of length ``n`` costs ``2 * n * numel`` FLOPs (``2 * n**3`` for one n x n
  channel). The non-local block's ``scaled_dot_product_attention`` is counted either as its fused kernel or,
  on CPU, as the two ``bmm`` of its math path, the same number.
- Added here: FlopCounterMode counts FFTs as zero. This module registers formulas for ``aten._fft_r2c``,
  ``aten._fft_c2r`` and ``aten._fft_c2c``: a complex FFT over ``N`` points costs ``5 * N * log2(N)`` real FLOPs
  (the radix-2 Cooley-Tukey count); a real-input (r2c) or real-output (c2r) transform costs half of that.
  For an n-dim transform ``N`` is the product of the transformed sizes (the row-column algorithm gives the
  same total, ``sum_i (N / n_i) * 5 * n_i * log2(n_i) = 5 * N * log2(N)``), multiplied by the number of
  independent transforms (batch x channels). Sizes that are not powers of two use the same nominal formula,
  rounded to an integer.
- Not counted: elementwise and normalisation ops (batch norm, the spectral ReLU's ``addcmul`` + ``relu``,
  the residual ``x + alpha * y``, softmax, pooling); copies and views cost nothing.
  :attr:`ComplexityReport.uncounted_elements` lists how many elements each of them produced (one to a few
  FLOPs each). At the paper's setting that is 4.8 M elements for SRB_F (6.7 % of its counted FLOPs at one
  FLOP per element), 4.7 M for SRB_A / SRB_DCT (0.9 %), 19.9 M for the non-local block (0.2 %, mostly its
  4096 x 4096 softmax) and 2.6 M for A^2-Net (0.4 %).
- Parameters: every ``nn.Parameter`` (trainable or not); buffers (BN running statistics, the fixed DCT
  matrices) are not parameters.

Table 3 at the paper's setting
------------------------------
One block before the 4th up-sampling layer of U-Net* (features 16-32-64-128-256, 512 x 512 input): the block
sees C=256 channels at 64 x 64, batch 1. Our counts with the default arguments, beside the paper's:

=========  =======  =======  ============  =======  ============
block      GFLOPs   GMACs    paper G       params   paper params
=========  =======  =======  ============  =======  ============
SRB_F      0.0716   0.0358   0.028         7,809    8,704
SRB_A      0.5411   0.2705   0.031         17,665   8,448
SRB_DCT    0.5411   0.2705   --            9,473    --
Non-local  9.6637   4.8318   2.126         131,840  33.02 K
A^2-Net    0.6040   0.3020   0.071         66,176   16,640
=========  =======  =======  ============  =======  ============

- SRB_F: the two FFTs are 62.9 M of its 71.6 M FLOPs (``256 * 2.5 * 4096 * 12`` each way), the convs 8.7 M.
- SRB_A / SRB_DCT: four mode products (two for ``f``, two for ``f^-1``) of ``2 * 64 * (256 * 64 * 64)`` FLOPs
  each, 537 M. The paper's 0.031 G for SRB_A is below that floor whether it reports FLOPs or MACs (268 M),
  so its counter did not see the AOM matmuls (a module-hook counter such as ``thop`` sees only ``nn.Conv`` /
  ``nn.BatchNorm`` layers) and, presumably, not the FFTs either. The paper's FLOPs are therefore not
  comparable with ours, and no choice of ``groups`` reconciles them.
- Non-local / A^2-Net: our defaults (``inter_channels = C / 2``; ``key_channels = value_channels = C / 4``)
  have about 4x the paper's parameters. The paper's 33,024 (33.02 K) and 16,640 are ``256 * w + 256`` with
  ``w`` = 128 and 64: one of our output convs plus a C-sized bias, or four C x C/8 (C/16) convs plus one
  bias; the paper does not give its widths.

Groups of the SRB's two 1x1 convs (C=256, K = C / reduction = 128)
------------------------------------------------------------------
SRB_F's convs map C' = 512 interleaved (Re, Im) channels to K' = 256 and back, ``2 * 512 * 256 / groups``
weights; SRB_A's map 256 to 128 and back, ``2 * 256 * 128 / groups``. The rest does not depend on
``groups``: BN 1,536 (F) / 768 (A), the spectral ReLU's ``W, B`` 2 * 64 * 33 = 4,224 on the one-sided rfft
grid (F) / 2 * 64 * 64 = 8,192 (A, DCT), the AOM matrices P, Q 2 * 64 * 64 = 8,192 (A only), ``alpha`` 1.

======  =======  =======  ==================
groups  SRB_F    SRB_A    SRB_A without P, Q
======  =======  =======  ==================
1       267,905  82,689   74,497
8       38,529   25,345   17,153
32      13,953   19,201   11,009
64      9,857    18,177   9,985
128     7,809    17,665   9,473
paper   8,704    8,448    8,448
======  =======  =======  ==================

``groups = K`` (the default, and the largest value the block accepts) comes closest for both: SRB_F 7,809
(-895), SRB_A 9,473 without its orthogonal matrices (+1,025) and 17,665 with them. No ``groups`` matches
either figure when every parameter is counted. The remaining differences:

- SRB_F's ``W, B`` live on the one-sided 64 x 33 grid (4,224) where the paper's figures leave room for a full
  64 x 64 grid (8,192): 8,704 = 8,192 + 512 and 8,448 = 8,192 + 256 both read as "64 x 64 ``W, B`` plus
  C' parameters", which the bottleneck BN (2 * K' = C') or one conv with ``groups = K'`` (C' weights) would
  give, but never both convs and both BNs.
- The AOM matrices (8,192) cannot be in the paper's SRB_A figure together with a 64 x 64 ``W, B``: its counter
  skipped one of them (parameters of a custom module, or matrices kept as buffers and retracted by QR).
- Counting only the two convs and the bottleneck BN (what a conv/BN-only counter sees, without the second
  BN) reproduces both figures exactly with ``groups`` 32 (F) and 8 (A), 8,192 conv weights in each block.
  Those groups follow no common rule and their conv MACs (17.3 M for SRB_F on the 64 x 33 grid, 33.6 M for
  SRB_A) do not give the paper's 0.028 / 0.031 G, so we read this as a coincidence, not as the paper's layout.
"""

from __future__ import annotations

import argparse
import csv
import io
import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode, flop_registry

__all__ = [
    "ComplexityReport",
    "FFT_FLOP_FORMULAS",
    "PAPER_TABLE3",
    "GroupsFit",
    "Table3Row",
    "count_complexity",
    "fft_flops",
    "format_groups_sweep",
    "format_table3",
    "groups_sweep",
    "main",
    "param_breakdown",
    "table3",
]

_aten = torch.ops.aten


def fft_flops(transform_size: int, transforms: int, real: bool) -> int:
    """
    FLOPs of ``transforms`` independent FFTs over ``transform_size`` points: ``5 * N * log2(N)`` for a complex
    transform, half of that for a real-input or real-output one.
    """
    if transform_size <= 1 or transforms == 0:
        return 0
    flops = 5 * transform_size * math.log2(transform_size) * transforms
    return round(flops / 2 if real else flops)


def _fft_shape_flops(shape: Sequence[int], dim: Sequence[int], real: bool) -> int:
    axes = {d % len(shape) for d in dim}
    size = math.prod(shape[d] for d in axes)
    transforms = math.prod(s for d, s in enumerate(shape) if d not in axes)
    return fft_flops(size, transforms, real)


# FlopCounterMode calls a formula with the op's arguments, tensors replaced by their shapes.
def _fft_r2c_flop(self_shape, dim, normalization, onesided, *args, out_shape=None, **kwargs) -> int:
    return _fft_shape_flops(self_shape, dim, real=True)


def _fft_c2r_flop(self_shape, dim, normalization, last_dim_size, *args, out_shape=None, **kwargs) -> int:
    # The real output holds the transform size; the one-sided input's last axis does not.
    return _fft_shape_flops(out_shape, dim, real=True)


def _fft_c2c_flop(self_shape, dim, normalization, forward, *args, out_shape=None, **kwargs) -> int:
    return _fft_shape_flops(self_shape, dim, real=False)


FFT_FLOP_FORMULAS: dict[Any, Any] = {
    _aten._fft_r2c: _fft_r2c_flop,
    _aten._fft_c2r: _fft_c2r_flop,
    _aten._fft_c2c: _fft_c2c_flop,
}

# Ops that do arithmetic on every element yet have no FLOP formula; tracked to show how much is left out.
# Copies carry the pointwise tag but do no arithmetic.
_UNCOUNTED_NAME_PARTS = ("norm", "softmax", "pool")
_COPIES = frozenset(("aten.clone", "aten._to_copy", "aten.copy", "aten.copy_", "aten.lift_fresh_copy", "aten.alias"))


class _UncountedElements(TorchDispatchMode):
    """Records the output size of elementwise / normalisation ops that FlopCounterMode gives no FLOPs."""

    def __init__(self, counted: set[Any]) -> None:
        super().__init__()
        self.counted = counted
        self.elements: dict[str, int] = defaultdict(int)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        packet = func._overloadpacket
        name = str(packet)
        if packet not in self.counted and name not in _COPIES and (
            torch.Tag.pointwise in func.tags or any(p in name for p in _UNCOUNTED_NAME_PARTS)
        ):
            first = out[0] if isinstance(out, (tuple, list)) else out
            if isinstance(first, torch.Tensor):
                self.elements[name] += first.numel()
        return out


@dataclass
class ComplexityReport:
    """
    Cost of one inference forward pass.

    Attributes:
        params: number of parameters.
        trainable_params: parameters with ``requires_grad``.
        flops: total FLOPs (multiplies and adds counted separately), FFTs included.
        per_module: FLOPs per module, keyed by the names FlopCounterMode reports (the root module's class name,
            then dotted submodule names, e.g. ``"SpectralResidualBlock.phi.conv_reduce"``); a parent includes
            its children.
        per_op: FLOPs per aten op, e.g. ``{"aten.convolution": ..., "aten._fft_r2c": ...}``.
        uncounted_elements: elements produced by elementwise / normalisation ops that have no FLOP formula.
    """

    params: int
    trainable_params: int
    flops: int
    per_module: dict[str, int] = field(default_factory=dict)
    per_op: dict[str, int] = field(default_factory=dict)
    uncounted_elements: dict[str, int] = field(default_factory=dict)

    @property
    def macs(self) -> float:
        """Multiply-accumulates, ``flops / 2``."""
        return self.flops / 2


def count_complexity(module: nn.Module, example_input: torch.Tensor | Sequence[int]) -> ComplexityReport:
    """
    Parameters and inference FLOPs of one forward pass of ``module`` in eval mode under ``no_grad``
    (the module's train/eval mode is restored afterwards).

    Args:
        module: the module to measure.
        example_input: an input tensor, or its shape (a float32 tensor of zeros on the module's device is used).

    Returns:
        a :class:`ComplexityReport`.
    """
    if isinstance(example_input, torch.Tensor):
        x = example_input
    else:
        param = next(module.parameters(), None)
        x = torch.zeros(tuple(int(s) for s in example_input), device=param.device if param is not None else None)
    counter = FlopCounterMode(display=False, custom_mapping=FFT_FLOP_FORMULAS)
    uncounted = _UncountedElements(set(flop_registry) | set(FFT_FLOP_FORMULAS))
    was_training = module.training
    module.eval()
    try:
        # The element recorder is entered first so that it sees the ops after FlopCounterMode decomposed them.
        with torch.no_grad(), uncounted, counter:
            module(x)
    finally:
        module.train(was_training)
    counts = counter.get_flop_counts()
    return ComplexityReport(
        params=sum(p.numel() for p in module.parameters()),
        trainable_params=sum(p.numel() for p in module.parameters() if p.requires_grad),
        flops=counter.get_total_flops(),
        per_module={name: sum(ops.values()) for name, ops in counts.items() if name != "Global"},
        per_op={str(op): n for op, n in counts.get("Global", {}).items()},
        uncounted_elements=dict(uncounted.elements),
    )


def param_breakdown(module: nn.Module) -> dict[str, int]:
    """Parameter count per owning submodule (``"phi.conv_reduce"``, ``"f.orthogonal_matrices"``, ``"alpha"``)."""
    out: dict[str, int] = defaultdict(int)
    for name, p in module.named_parameters():
        owner = name.rsplit(".", 1)[0] if "." in name else name
        out[owner] += p.numel()
    return dict(out)


# block name -> (label, paper GFLOPs, paper params); the paper's Table 3 (it has no SRB_DCT row).
PAPER_TABLE3: dict[str, tuple[str, float | None, int | None]] = {
    "srb_fft": ("SRB_F", 0.028, 8704),
    "srb_aom": ("SRB_A", 0.031, 8448),
    "srb_dct": ("SRB_DCT", None, None),
    "nonlocal": ("Non-local", 2.126, 33020),
    "double_attention": ("A²-Net", 0.071, 16640),
}


@dataclass
class Table3Row:
    """One block of Table 3: our :class:`ComplexityReport` beside the paper's figures (``None``: not given)."""

    name: str
    label: str
    block: nn.Module
    report: ComplexityReport
    paper_gflops: float | None
    paper_params: int | None


def _make_block(name: str, channels: int, size: int, spatial_dims: int, groups: int | None) -> nn.Module:
    from monai_srb.blocks.factory import make_block

    spatial_size = (size,) * spatial_dims
    if name.startswith("srb_"):
        # The spectral ReLU's W, B are built for the actual grid, so no resampling is counted.
        return make_block(name, spatial_dims, channels, spatial_size=spatial_size, groups=groups)
    return make_block(name, spatial_dims, channels)


def table3(
    channels: int = 256, size: int = 64, groups: int | None = None, spatial_dims: int = 2, batch: int = 1
) -> list[Table3Row]:
    """
    The cost of each block of the paper's Table 3 on one feature map (the block alone: what it adds to U-Net*).

    Args:
        channels: channels C of the feature map the block sees (the paper: 256).
        size: its spatial size per axis (the paper: 64).
        groups: ``groups`` of the SRBs' two 1x1 convs; ``None`` for the block's default.
        spatial_dims: 2 or 3.
        batch: batch size of the example input (the paper: 1).
    """
    shape = (batch, channels) + (size,) * spatial_dims
    rows = []
    for name, (label, gflops, params) in PAPER_TABLE3.items():
        block = _make_block(name, channels, size, spatial_dims, groups)
        rows.append(Table3Row(name, label, block, count_complexity(block, shape), gflops, params))
    return rows


@dataclass
class GroupsFit:
    """SRB parameter counts for one ``groups`` value of the two 1x1 convs in ``phi``."""

    groups: int
    srb_f: int
    srb_a: int
    srb_a_without_aom: int


def groups_sweep(channels: int = 256, size: int = 64, spatial_dims: int = 2) -> list[GroupsFit]:
    """
    SRB_F and SRB_A parameter counts for ``groups`` in {1, 2, 4, ..., K} (K = channels / 2, the largest value the
    block accepts with the default reduction 2).
    """
    hidden = channels // 2
    candidates = sorted({2**i for i in range(hidden.bit_length()) if hidden % 2**i == 0} | {hidden})
    fits = []
    for g in candidates:
        srb_f = _make_block("srb_fft", channels, size, spatial_dims, g)
        srb_a = _make_block("srb_aom", channels, size, spatial_dims, g)
        n_a = sum(p.numel() for p in srb_a.parameters())
        n_aom = sum(p.numel() for p in srb_a.f.parameters())
        fits.append(GroupsFit(g, sum(p.numel() for p in srb_f.parameters()), n_a, n_a - n_aom))
    return fits


def _fmt(value: float | None, spec: str) -> str:
    return "—" if value is None else format(value, spec)


def _render(header: list[str], body: list[list[str]], fmt: str) -> str:
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(body)
        return buf.getvalue().rstrip("\n")
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in body]
    return "\n".join(lines)


def format_table3(rows: Sequence[Table3Row], fmt: str = "markdown") -> str:
    """Table 3 as markdown or csv: our ΔGFLOPs, ΔGMACs and ΔParams beside the paper's."""
    header = [
        "Block",
        "ΔGFLOPs (ours)",
        "ΔGMACs (ours)",
        "ΔGFLOPs or GMACs (paper)",
        "ΔParams K (ours)",
        "ΔParams K (paper)",
    ]
    body = [
        [
            r.label,
            f"{r.report.flops / 1e9:.4g}",
            f"{r.report.macs / 1e9:.4g}",
            _fmt(r.paper_gflops, ".3f"),
            f"{r.report.params / 1e3:.3f}",
            _fmt(None if r.paper_params is None else r.paper_params / 1e3, ".3f"),
        ]
        for r in rows
    ]
    return _render(header, body, fmt)


def format_groups_sweep(fits: Sequence[GroupsFit], fmt: str = "markdown") -> str:
    """The ``groups`` sweep as markdown or csv, with the differences to the paper's SRB_F / SRB_A counts."""
    paper_f, paper_a = PAPER_TABLE3["srb_fft"][2], PAPER_TABLE3["srb_aom"][2]
    header = ["groups", "SRB_F params", "vs paper", "SRB_A params", "vs paper", "SRB_A w/o P,Q", "vs paper"]
    body = [
        [
            str(f.groups),
            str(f.srb_f),
            f"{f.srb_f - paper_f:+d}",
            str(f.srb_a),
            f"{f.srb_a - paper_a:+d}",
            str(f.srb_a_without_aom),
            f"{f.srb_a_without_aom - paper_a:+d}",
        ]
        for f in fits
    ]
    return _render(header, body, fmt)


def _notes(rows: Sequence[Table3Row], fits: Sequence[GroupsFit]) -> str:
    paper_f, paper_a = PAPER_TABLE3["srb_fft"][2], PAPER_TABLE3["srb_aom"][2]
    best_f = min(fits, key=lambda f: abs(f.srb_f - paper_f))
    best_a = min(fits, key=lambda f: abs(f.srb_a_without_aom - paper_a))
    lines = [
        "FLOPs count multiplies and adds separately (a matmul is 2*M*N*K); MACs = FLOPs / 2. FFTs: 5*N*log2(N) per",
        "complex transform, half for real input/output. Not counted: elementwise and norm ops; elements they produce:",
    ]
    for r in rows:
        uncounted = sum(r.report.uncounted_elements.values())
        fft = sum(v for k, v in r.report.per_op.items() if "_fft_" in k)
        share = 100 * uncounted / max(r.report.flops, 1)
        line = f"- {r.label}: {uncounted / 1e6:.3g} M elements ({share:.1f} % of the counted FLOPs at 1 FLOP each)"
        if fft:
            line += f"; FFTs: {fft / 1e9:.4g} of its {r.report.flops / 1e9:.4g} GFLOPs"
        lines.append(line)
    lines += [
        "",
        f"SRB params closest to the paper's (C=256 at 64x64): SRB_F groups={best_f.groups} ({best_f.srb_f}, "
        f"{best_f.srb_f - paper_f:+d}); SRB_A without its P, Q matrices groups={best_a.groups} "
        f"({best_a.srb_a_without_aom}, {best_a.srb_a_without_aom - paper_a:+d}; {best_a.srb_a} with them).",
    ]
    for r in rows:
        if r.name in ("srb_fft", "srb_aom"):
            parts = ", ".join(f"{k} {v}" for k, v in param_breakdown(r.block).items())
            lines.append(f"- {r.label} parameters by module: {parts}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    """Print the paper's Table 3 for our blocks, the SRB ``groups`` sweep and notes on what is counted."""
    parser = argparse.ArgumentParser(prog="monai-srb complexity", description=main.__doc__)
    parser.add_argument("--channels", type=int, default=256, help="channels the block sees (paper: 256)")
    parser.add_argument("--size", type=int, default=64, help="spatial size per axis (paper: 64)")
    parser.add_argument("--groups", type=int, default=None, help="groups of the SRBs' 1x1 convs (default: K)")
    parser.add_argument("--format", choices=("markdown", "csv"), default="markdown")
    args = parser.parse_args(argv)

    try:
        rows = table3(args.channels, args.size, args.groups)
        fits = groups_sweep(args.channels, args.size)
    except ValueError as e:
        parser.error(str(e))
    print(format_table3(rows, args.format))
    print()
    print(format_groups_sweep(fits, args.format))
    if args.format == "markdown":
        print()
        print(_notes(rows, fits))


if __name__ == "__main__":
    main()
