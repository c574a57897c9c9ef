"""The pre-registered analysis: the paired tests, the endpoints read from the runs, and the decision rule's branches."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from workflows.confirmatory import comparison_table, decide, paired_test
from workflows.results import RunRecord

SRB_F, SRB_I, UNET = "U-Net + 4 SRB_F, instance norm", "U-Net + 4 SRB_I, instance norm", "U-Net, instance norm"
COMPARISONS = [[SRB_F, UNET], [SRB_F, SRB_I], [SRB_I, UNET]]


def test_paired_test_is_the_t_test_and_the_sign_test_by_hand():
    a = [0.91, 0.93, 0.90, 0.95, 0.92]
    b = [0.90, 0.93, 0.91, 0.93, 0.90]
    test = paired_test(a, b)
    d = np.subtract(a, b)
    t = d.mean() / (d.std(ddof=1) / math.sqrt(len(d)))
    assert test.t == pytest.approx(t) and test.p == pytest.approx(2 * stats.t.sf(abs(t), len(d) - 1))
    half = stats.t.ppf(0.975, len(d) - 1) * d.std(ddof=1) / math.sqrt(len(d))
    assert (test.low, test.high) == pytest.approx((d.mean() - half, d.mean() + half))
    assert (test.wins, test.losses) == (3, 1)  # the tie is dropped
    assert test.sign_p == pytest.approx(stats.binomtest(3, 4).pvalue)
    assert paired_test([5.0, 3.0], [6.0, 4.0], lower_is_better=True).wins == 2


def test_paired_test_refuses_too_few_pairs():
    with pytest.raises(ValueError, match="at least 2 pairs of equal length, got 1 and 1 values"):
        paired_test([1.0], [2.0])


def _test(deltas):
    base = np.linspace(0.90, 0.92, len(deltas))
    return paired_test(base + np.asarray(deltas), base)


RNG = np.random.default_rng(0)
NOISE = RNG.normal(0, 0.0005, 10)
# (primary Δs, F - I Δs, I - U Δs, planned pairs, the verdict's opening words)
DECISIONS = [
    (0.006 + NOISE, 0.005 + NOISE, 0.001 + NOISE * 5, 10, "**Confirmed:**", "global reach"),
    (0.006 + NOISE, NOISE * 5, 0.006 + NOISE, 10, "**Confirmed:**", "capacity"),
    (0.006 + NOISE, NOISE * 5, NOISE * 5, 10, "**Confirmed:**", "left open"),
    (NOISE * 4, NOISE, NOISE, 10, "**Refuted:**", "does not replicate"),
    (-0.003 + NOISE, NOISE, NOISE, 10, "**Refuted:**", "the block hurts"),
    (np.r_[0.03, -0.002 + NOISE[:9]], NOISE, NOISE, 10, "**Open:**", ""),  # p >= 0.05, interval holds +0.49
    (0.006 + NOISE, NOISE, NOISE, 12, "**No verdict yet:** 10 of the 12", ""),
]


@pytest.mark.parametrize("primary,reach,capacity,planned,opening,reason", DECISIONS)
def test_the_decision_rule(primary, reach, capacity, planned, opening, reason):
    tests = {(SRB_F, UNET): _test(primary), (SRB_F, SRB_I): _test(reach), (SRB_I, UNET): _test(capacity)}
    verdict = decide(tests, COMPARISONS, planned)
    assert verdict.startswith(opening) and reason in verdict


def test_open_when_significant_but_carried_by_few_pairs():
    deltas = np.r_[[0.02] * 7, [-0.001] * 3] + NOISE
    test = _test(deltas)
    assert test.p < 0.05 and test.wins == 7
    assert decide({(SRB_F, UNET): test}, COMPARISONS, 10).startswith("**Open:**")


def _run(variant, seed, fold, iou, dice):
    history = {"val_mean_iou": {1: iou - 0.01, 2: iou}, "val_hc_error_mm": {1: 3.0, 2: 2.0 + (variant == UNET)}}
    images = {f"{k:03d}_HC.png": v for k, v in enumerate(dice)}
    hc = {name: 1.0 + (variant == UNET) for name in images}
    return RunRecord(variant, seed, fold, "FINISHED", history=history, details={"val_dice": images,
                                                                                  "val_hc_error_mm": hc})


def test_comparison_table_reads_every_endpoint_from_the_runs():
    runs = []
    for seed in (3, 4):
        for fold in range(3):
            runs.append(_run(UNET, seed, fold, 0.90 + 0.001 * fold, [0.95, 0.85, 0.80, 0.97]))
            runs.append(_run(SRB_F, seed, fold, 0.905 + 0.001 * fold + 0.001 * seed, [0.96, 0.92, 0.80, 0.97]))
    text, tests = comparison_table(runs, [[SRB_F, UNET]], "val_mean_iou")
    assert tests[(SRB_F, UNET)].n == 6 and tests[(SRB_F, UNET)].wins == 6
    assert f"| {SRB_F} − {UNET} | val_mean_iou (last epoch) | 6 |" in text
    assert f"| {SRB_F} − {UNET} | HC error, median over images (mm) | 6 | −1.00 ± 0.00 |" in text
    assert f"| {SRB_F} − {UNET} | share of images with Dice < 0.90 | 6 | −25.00 ± 0.00 |" in text  # 2 of 4 -> 1 of 4
    # per-image Δ: +0.01, +0.07, 0, 0 -> median +0.005 (x100: +0.50)
    assert "mean over the 6 pairs +0.50" in text
