"""
The paper's Table 3 for our blocks: the parameters and FLOPs one block adds to U-Net* (C=256 at 64 x 64, the
map before up4 at 512 x 512), beside the paper's figures, and the ``groups`` sweep of the SRBs' 1x1 convs that
looks for the paper's parameter counts. What the comparison shows: ``docs/complexity.md``.

    python -m workflows.complexity_table                       # the paper's setting
    python -m workflows.complexity_table --channels 64 --size 32 --format csv
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass

from torch import nn

from monai_srb.complexity import ComplexityReport, build_block, count_complexity, param_breakdown, render_table

__all__ = ["PAPER_TABLE3", "GroupsFit", "Table3Row", "format_groups_sweep", "format_table3", "groups_sweep", "main",
           "table3"]


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
        block = build_block(name, spatial_dims, channels, size, groups)
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
        srb_f = build_block("srb_fft", spatial_dims, channels, size, g)
        srb_a = build_block("srb_aom", spatial_dims, channels, size, g)
        n_a = sum(p.numel() for p in srb_a.parameters())
        n_aom = sum(p.numel() for p in srb_a.f.parameters())
        fits.append(GroupsFit(g, sum(p.numel() for p in srb_f.parameters()), n_a, n_a - n_aom))
    return fits


def _fmt(value: float | None, spec: str) -> str:
    return "—" if value is None else format(value, spec)


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
    return render_table(header, body, fmt)


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
    return render_table(header, body, fmt)


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
    """
    Print the paper's Table 3 for our blocks, the SRB ``groups`` sweep and notes on what is counted.

    Args:
        argv: the command-line arguments (``--help``); ``None``: ``sys.argv[1:]``.
    """
    parser = argparse.ArgumentParser(prog="python -m workflows.complexity_table", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
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
