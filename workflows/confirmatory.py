"""
The analysis of a pre-registered comparison (a preset's ``"comparisons"``; docs/results.md, "Confirmatory test"):
per comparison (variant - reference) the paired Δ over the (seed, fold) runs both FINISHED, with a two-sided paired
t-test (``scipy.stats.ttest_rel``), the sign test on the wins (``scipy.stats.binomtest``, ties dropped) and the 95%
interval; the endpoints the plan names (the key metric at the last and at the best epoch, the mean and median HC
error, the share of images below a Dice of 0.90, the median per-image Δ Dice); and the plan's decision rule on the
first comparison, stated only when every planned pair is in.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

from workflows.results import RunRecord, _scale, _signed

__all__ = ["DICE_TAIL", "PairedTest", "comparison_table", "decide", "paired_test"]

# The plan's tail threshold: the share of validation images with a Dice below it.
DICE_TAIL = 0.90
# The decision rule's numbers (docs/results.md, "Confirmatory test (HC18, 256 px)").
ALPHA = 0.05
MIN_WINS = 8
CANDIDATE = 0.0049  # the candidate row's own estimate of the primary Δ (+0.49 mean IoU x100)


@dataclass
class PairedTest:
    """A paired difference over n pairs: mean, std (ddof 1), its 95% interval, the t-test and the sign test."""

    deltas: list[float]
    mean: float
    std: float
    low: float
    high: float
    t: float
    p: float
    wins: int
    losses: int
    sign_p: float

    @property
    def n(self) -> int:
        return len(self.deltas)

    @property
    def se(self) -> float:
        return self.std / math.sqrt(self.n) if self.n > 1 else float("nan")


def paired_test(a: Sequence[float], b: Sequence[float], lower_is_better: bool = False) -> PairedTest:
    """
    ``a - b`` over paired values: the two-sided paired t-test (``ttest_rel``), its 95% interval, and the two-sided
    sign test on the pairs ``a`` wins (a higher value; a lower one when ``lower_is_better``), ties dropped.

    Raises:
        ValueError: when ``a`` and ``b`` differ in length or hold fewer than 2 pairs.
    """
    if len(a) != len(b) or len(a) < 2:
        raise ValueError(f"a paired test needs at least 2 pairs of equal length, got {len(a)} and {len(b)} values.")
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    d = x - y
    test = stats.ttest_rel(x, y)
    low, high = test.confidence_interval(0.95) if np.ptp(d) > 0 else (float(d.mean()), float(d.mean()))
    better = d < 0 if lower_is_better else d > 0
    worse = d > 0 if lower_is_better else d < 0
    wins, losses = int(better.sum()), int(worse.sum())
    sign_p = float(stats.binomtest(wins, wins + losses, 0.5).pvalue) if wins + losses else 1.0
    t, p = (float(test.statistic), float(test.pvalue)) if np.ptp(d) > 0 else (math.inf * np.sign(d.mean()), 0.0)
    return PairedTest(d.tolist(), float(d.mean()), float(d.std(ddof=1)), float(low), float(high), t, p, wins, losses,
                      sign_p)


def _median_of(details: Mapping[str, Mapping[str, float]], metric: str) -> float | None:
    scores = details.get(metric)
    return float(np.median(list(scores.values()))) if scores else None


def _tail_share(details: Mapping[str, Mapping[str, float]]) -> float | None:
    dice = details.get("val_dice")
    return float(np.mean([v < DICE_TAIL for v in dice.values()])) if dice else None


def _median_image_delta(a: Mapping[str, Mapping[str, float]], b: Mapping[str, Mapping[str, float]]) -> float | None:
    """The median over the images both runs scored of the per-image Δ Dice (a - b)."""
    da, db = a.get("val_dice") or {}, b.get("val_dice") or {}
    shared = sorted(set(da) & set(db))
    return float(np.median([da[k] - db[k] for k in shared])) if shared else None


# (label, value of one run or None, scale, lower is better); "image" endpoints pair the two runs' images.
def _endpoints(key_metric: str) -> list[tuple[str, object, float, bool]]:
    return [
        (f"{key_metric} (last epoch)", lambda r: r.last(key_metric), _scale(key_metric), False),
        (f"{key_metric} (best epoch)", lambda r: r.at_best(key_metric, key_metric), _scale(key_metric), False),
        ("HC error, mean (mm)", lambda r: r.last("val_hc_error_mm"), 1.0, True),
        ("HC error, median over images (mm)", lambda r: _median_of(r.details, "val_hc_error_mm"), 1.0, True),
        (f"share of images with Dice < {DICE_TAIL:.2f}", lambda r: _tail_share(r.details), 100.0, True),
    ]


def _fmt_p(p: float) -> str:
    return f"{p:.3f}" if p >= 0.001 else f"{p:.1e}"


def comparison_table(
    records: Sequence[RunRecord], comparisons: Sequence[Sequence[str]], key_metric: str
) -> tuple[str, dict[tuple[str, str], PairedTest]]:
    """
    Markdown: per comparison and endpoint, the pairs, the mean Δ ± std, SE, 95% interval, t and its p, wins and the
    sign test's p; then per comparison the median per-image Δ Dice of each pair. Returns the text and the key
    metric's (last epoch) test per comparison.
    """
    done = {(r.variant, r.seed, r.fold): r for r in records if r.status == "FINISHED"}
    header = ["comparison", "endpoint", "pairs", "Δ (mean ± std)", "SE", "95% interval", "t", "p (t-test)",
              "wins", "p (sign test)"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    per_image = []
    primary: dict[tuple[str, str], PairedTest] = {}
    for variant, reference in comparisons:
        keys = sorted((s, f) for v, s, f in done if v == variant and (reference, s, f) in done)
        for i, (label, value, scale, lower) in enumerate(_endpoints(key_metric)):
            pairs = [(value(done[(variant, *k)]), value(done[(reference, *k)])) for k in keys]
            pairs = [(a, b) for a, b in pairs if a is not None and b is not None]
            if len(pairs) < 2:
                continue
            test = paired_test([a for a, _ in pairs], [b for _, b in pairs], lower_is_better=lower)
            if i == 0:
                primary[(variant, reference)] = test
            cells = [f"{variant} − {reference}", label, str(test.n),
                     f"{_signed(test.mean * scale, 2)} ± {test.std * scale:.2f}", f"{test.se * scale:.2f}",
                     f"[{_signed(test.low * scale, 2)}, {_signed(test.high * scale, 2)}]", _signed(test.t, 2),
                     _fmt_p(test.p), f"{test.wins}/{test.n}", _fmt_p(test.sign_p)]
            lines.append("| " + " | ".join(cells) + " |")
        medians = [(k, _median_image_delta(done[(variant, *k)].details, done[(reference, *k)].details)) for k in keys]
        medians = [(k, m) for k, m in medians if m is not None]
        if medians:
            values = [m * 100 for _, m in medians]
            per_pair = ", ".join(f"s{s} f{f}: {_signed(m, 2)}" for (s, f), m in zip((k for k, _ in medians), values))
            per_image.append(f"- {variant} − {reference}: mean over the {len(values)} pairs "
                             f"{_signed(float(np.mean(values)), 2)} (×100; per pair {per_pair})")
    text = "\n".join(lines) + "\n"
    if per_image:
        text += "\nThe median over each pair's validation images of the per-image Δ Dice:\n\n"
        text += "\n".join(per_image) + "\n"
    return text, primary


def decide(tests: Mapping[tuple[str, str], PairedTest], comparisons: Sequence[Sequence[str]], planned: int) -> str:
    """
    The plan's decision rule, in words: on the first comparison (confirmed, refuted or open), and when confirmed,
    why (the second comparison: the variant against its local control; the third: the control against the
    reference). ``planned``: the pairs the plan runs; with fewer in, no verdict.
    """
    primary = tests.get(tuple(comparisons[0]))
    n = 0 if primary is None else primary.n
    if n < planned:
        return f"**No verdict yet:** {n} of the {planned} planned pairs of the primary comparison are in."
    d = primary
    if d.mean > 0 and d.p < ALPHA and d.wins >= MIN_WINS:
        verdict = (f"**Confirmed:** Δ {_signed(d.mean * 100, 2)}, p = {_fmt_p(d.p)}, {d.wins}/{d.n} wins.")
        why_f = tests.get(tuple(comparisons[1])) if len(comparisons) > 1 else None
        why_i = tests.get(tuple(comparisons[2])) if len(comparisons) > 2 else None
        if why_f is not None and why_f.mean > 0 and why_f.p < ALPHA:
            verdict += " The gain is put down to the global reach: the variant beats its local control."
        elif why_i is not None and why_i.mean > 0 and why_i.p < ALPHA:
            verdict += (" The gain is put down to capacity: the local control gains too, and the variant does not beat "
                        "it.")
        else:
            verdict += " Its cause is left open: neither the reach nor the capacity comparison passes the test."
        return verdict
    if d.p >= ALPHA and d.high < CANDIDATE:
        return (f"**Refuted:** Δ {_signed(d.mean * 100, 2)}, p = {_fmt_p(d.p)}, and the 95% interval "
                f"[{_signed(d.low * 100, 2)}, {_signed(d.high * 100, 2)}] excludes the candidate's "
                f"{_signed(CANDIDATE * 100, 2)}: the candidate does not replicate.")
    if d.mean < 0 and d.p < ALPHA:
        return f"**Refuted:** the block hurts, Δ {_signed(d.mean * 100, 2)}, p = {_fmt_p(d.p)}."
    return (f"**Open:** Δ {_signed(d.mean * 100, 2)}, p = {_fmt_p(d.p)}, {d.wins}/{d.n} wins, 95% interval "
            f"[{_signed(d.low * 100, 2)}, {_signed(d.high * 100, 2)}].")
