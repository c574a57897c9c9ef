"""The paper's Table 3 beside our counts (python -m workflows.complexity_table)."""

from __future__ import annotations

import csv
import io

from workflows.complexity_table import PAPER_TABLE3, groups_sweep, main, table3


def test_table3_rows():
    rows = table3(channels=8, size=16, groups=2)
    assert [r.name for r in rows] == list(PAPER_TABLE3)
    assert all(r.block.phi.conv_reduce.groups == 2 for r in rows if r.name.startswith("srb_"))
    assert rows[2].paper_params is None and rows[0].paper_params == 8704
    assert all(r.report.params == sum(p.numel() for p in r.block.parameters()) for r in rows)


def test_groups_sweep_reaches_k_and_separates_the_aom_matrices():
    fits = groups_sweep(channels=16, size=8)
    assert [f.groups for f in fits] == [1, 2, 4, 8]  # K = 16 / 2
    assert all(f.srb_a - f.srb_a_without_aom == 2 * 8 * 8 for f in fits)  # P and Q, 8 x 8 each
    assert [f.srb_f for f in fits] == sorted((f.srb_f for f in fits), reverse=True)


def test_main_prints_all_blocks(capsys):
    main(["--size", "16", "--channels", "8"])
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("| ")]
    for label in ("SRB_F", "SRB_A", "SRB_DCT", "Non-local", "A²-Net"):
        assert any(line.startswith(f"| {label} |") for line in rows), label
    assert "| 4 |" in out  # the groups sweep reaches K = 8 / 2


def test_main_csv(capsys):
    main(["--size", "16", "--channels", "8", "--format", "csv", "--groups", "1"])
    table = capsys.readouterr().out.split("\n\n")[0]
    records = list(csv.DictReader(io.StringIO(table)))
    assert [r["Block"] for r in records] == [label for label, _, _ in PAPER_TABLE3.values()]
    assert records[2]["ΔParams K (paper)"] == "—"
