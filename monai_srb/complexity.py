"""
Inference FLOPs and parameter counts of any module, FFTs included; ``monai-srb complexity`` prints them for the
blocks (``--help`` for the options). The paper's Table 3 and what its counts can be: ``python -m
workflows.complexity_table`` and ``docs/complexity.md``.

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
  FLOPs each).
- Parameters: every ``nn.Parameter`` (trainable or not); buffers (BN running statistics, the fixed DCT
  matrices) are not parameters.
"""

from __future__ import annotations

import argparse
import csv
import inspect
import io
import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from monai.utils import look_up_option
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode, flop_registry

from monai_srb.blocks.factory import block_names, block_transform, make_block
from monai_srb.blocks.spectral_residual import SpectralResidualBlock

__all__ = [
    "ComplexityReport",
    "FFT_FLOP_FORMULAS",
    "build_block",
    "count_complexity",
    "fft_flops",
    "format_costs",
    "main",
    "param_breakdown",
    "render_table",
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


def build_block(
    name: str, spatial_dims: int, channels: int, size: int, groups: int | None = None, reduction: int | None = None
) -> nn.Module:
    """
    A block of :func:`monai_srb.blocks.make_block` as the cost tables measure it, for one square (cubic) map.

    Args:
        name: a block name of ``make_block``, e.g. ``"srb_fft"`` or ``"nonlocal"``.
        spatial_dims: 2 or 3.
        channels: channels of the map the block sees.
        size: the map's spatial size per axis. An SRB is built for it, so its spectral ReLU's ``W``, ``B`` are
            used as they are, not resampled (which would add to the count).
        groups: ``groups`` of an SRB's two 1x1 convs; ``None``: the block's default. Other blocks have none.
        reduction: an SRB's bottleneck ratio (K = C / reduction); ``None``: the block's default. The attention
            blocks set their own widths.

    Raises:
        ValueError: as :func:`make_block`, e.g. for a ``reduction`` that does not divide ``channels``.
    """
    if block_transform(name) is None:  # not an SRB: no 1x1 conv groups or bottleneck ratio of ours to set
        return make_block(name, spatial_dims, channels, spatial_size=(size,) * spatial_dims)
    widths = {} if reduction is None else {"reduction": reduction}
    return make_block(name, spatial_dims, channels, spatial_size=(size,) * spatial_dims, groups=groups, **widths)


def render_table(header: Sequence[str], body: Sequence[Sequence[str]], fmt: str = "markdown") -> str:
    """
    ``header`` and the rows of ``body`` as a markdown table or as CSV.

    Args:
        header: the column names.
        body: the rows, one string per column.
        fmt: ``"markdown"`` or ``"csv"``.
    """
    fmt = look_up_option(fmt, ("markdown", "csv"))
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(body)
        return buf.getvalue().rstrip("\n")
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in body]
    return "\n".join(lines)


def format_costs(reports: Mapping[str, ComplexityReport], fmt: str = "markdown") -> str:
    """
    One row per block: GFLOPs, GMACs, the FFTs' share, parameters and the elements no FLOP formula covers.

    Args:
        reports: block name -> its :class:`ComplexityReport`.
        fmt: ``"markdown"`` or ``"csv"``.
    """
    header = ["Block", "GFLOPs", "GMACs", "FFT GFLOPs", "Params", "Uncounted elements (M)"]
    body = [
        [
            name,
            f"{r.flops / 1e9:.4g}",
            f"{r.macs / 1e9:.4g}",
            f"{sum(v for k, v in r.per_op.items() if '_fft_' in k) / 1e9:.4g}",
            str(r.params),
            f"{sum(r.uncounted_elements.values()) / 1e6:.3g}",
        ]
        for name, r in reports.items()
    ]
    return render_table(header, body, fmt)


def _positive_int(text: str) -> int:
    """An argparse ``type``: an integer of at least 1 (argparse names the argument before the message)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}.") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}.")
    return value


def _divisors(n: int) -> str:
    return ", ".join(str(d) for d in range(1, n + 1) if n % d == 0)


def _check_srb_widths(channels: int, reduction: int, groups: int | None) -> None:
    """
    Check the widths of an SRB's bottleneck (``channels / reduction``, 1x1 convs of ``groups``) before any block is
    built, so that the message names the command's arguments and the values they may take.

    Raises:
        ValueError: when ``reduction`` does not divide ``channels`` or ``groups`` does not divide
            ``channels // reduction``.
    """
    if channels % reduction:
        raise ValueError(
            f"argument --channels: {channels} is not divisible by --reduction {reduction} (an SRB's bottleneck has "
            f"channels / reduction channels): for --channels {channels}, --reduction may be one of "
            f"{_divisors(channels)}; for --reduction {reduction}, --channels must be a multiple of {reduction}."
        )
    hidden = channels // reduction
    if groups is not None and hidden % groups:
        raise ValueError(
            f"argument --groups: {groups} does not divide the SRBs' bottleneck of --channels {channels} / "
            f"--reduction {reduction} = {hidden} channels: --groups may be one of {_divisors(hidden)}."
        )


def main(argv: Sequence[str] | None = None) -> None:
    """
    Print the parameters and inference FLOPs of blocks on one feature map (``monai-srb complexity``).

    Args:
        argv: the command-line arguments (``--help``); ``None``: ``sys.argv[1:]``.
    """
    parser = argparse.ArgumentParser(
        prog="monai-srb complexity",
        description="Parameters and inference FLOPs (FFTs included) of blocks on one feature map, batch 1. The "
        "paper's Table 3 beside ours: python -m workflows.complexity_table in a clone of the repository.",
    )
    # the SRB's own default, named once: SpectralResidualBlock's signature
    default_reduction = inspect.signature(SpectralResidualBlock).parameters["reduction"].default
    parser.add_argument("--blocks", nargs="+", default=block_names(), choices=block_names(), metavar="BLOCK",
                        help=f"blocks to count (default: all of {', '.join(block_names())})")
    parser.add_argument("--spatial_dims", type=int, default=2, choices=(2, 3), help="2 or 3 (default: 2)")
    parser.add_argument("--channels", type=_positive_int, default=256, help="channels the block sees (default: 256)")
    parser.add_argument("--size", type=_positive_int, default=64, help="spatial size per axis (default: 64)")
    parser.add_argument("--reduction", type=_positive_int, default=default_reduction,
                        help=f"the SRBs' bottleneck ratio, K = channels / reduction (default: {default_reduction})")
    parser.add_argument("--groups", type=_positive_int, default=None,
                        help="groups of the SRBs' 1x1 convs, a divisor of K (default: K)")
    parser.add_argument("--format", choices=("markdown", "csv"), default="markdown")
    args = parser.parse_args(argv)

    shape = (1, args.channels) + (args.size,) * args.spatial_dims
    try:
        if any(block_transform(name) is not None for name in args.blocks):
            _check_srb_widths(args.channels, args.reduction, args.groups)
        reports = {
            name: count_complexity(
                build_block(name, args.spatial_dims, args.channels, args.size, args.groups, args.reduction), shape
            )
            for name in args.blocks
        }
    except ValueError as e:
        parser.error(str(e))
    print(format_costs(reports, args.format))
