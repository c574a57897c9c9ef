"""
Reading a grid's runs back from MLflow and reporting them: one row per variant, mean +- std over seeds, and
the paired difference to its baseline, as a markdown table and a figure.

Aggregation: with folds, a seed's score is the mean over its folds (a cross-validated score), then
mean +- std over seeds; without folds each seed is one run. Each metric is read at the last epoch
(``last``) and at the epoch of the best key metric (``best``, the epoch ``model.pt`` holds; optimistic,
because that epoch is chosen on the same validation images). The difference to the baseline is paired
(same seed, same folds); it counts as inside the noise unless its mean is at least twice its standard
error over seeds.
"""

from __future__ import annotations

import json
import math
import re
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from workflows.grid import TAG, client_and_experiment, experiment_name, tracking_uri
from workflows.records import read_details

__all__ = ["Row", "RunRecord", "Stat", "format_table", "latest_per_job", "merge_uris", "paired_deltas", "paired_table",
           "plot_summary", "read_runs", "report", "summarise"]


def merge_uris(path: str) -> list[str]:
    """
    The stores behind one ``--merge`` item: a tracking URI as it is; a SQLite file; or an ``--out`` folder
    of any version of the grid runner, i.e. its ``mlflow.db`` plus the per-worker stores ``workers/<k>/mlflow.db``
    that the removed ``--workers`` option wrote.
    """
    if re.match(r"^[a-z][a-z0-9+]*://", path) or path.startswith("sqlite:"):
        return [path]
    p = Path(path)
    candidates = [p] if p.is_file() else [p / "mlflow.db", *sorted(p.glob("workers/*/mlflow.db"))]
    files = [f for f in candidates if f.is_file()]
    if not files:
        raise ValueError(
            f"--merge {path!r}: expected a tracking URI, an MLflow SQLite file or an --out folder holding mlflow.db "
            "(or workers/<k>/mlflow.db), found none."
        )
    return [f"sqlite:///{f.resolve()}" for f in files]


@dataclass
class RunRecord:
    """One run read back from MLflow: its tags and, per metric, its value per epoch."""

    variant: str
    seed: int
    fold: int | None
    status: str
    history: dict[str, dict[int, float]] = field(default_factory=dict)
    wall_s: float | None = None
    extra: str = "{}"
    start_time: int = 0
    # the last validation's per-image scores, {metric: {image: score}}, when read (workflows.records.read_details)
    details: dict[str, dict[str, float]] = field(default_factory=dict)

    def last(self, metric: str) -> float | None:
        h = self.history.get(metric)
        return h[max(h)] if h else None

    def at_best(self, metric: str, key_metric: str) -> float | None:
        """``metric`` at the epoch of the highest ``key_metric`` (the first such epoch)."""
        key, h = self.history.get(key_metric), self.history.get(metric)
        if not key or not h:
            return None
        best = max(sorted(key), key=lambda step: key[step])
        return h.get(best)


def latest_per_job(records: Sequence[RunRecord]) -> list[RunRecord]:
    """One run per (variant, seed, fold): the latest FINISHED one, else the latest (a rerun replaces a run)."""
    best: dict[tuple[str, int, int | None], RunRecord] = {}
    for r in sorted(records, key=lambda r: (r.status == "FINISHED", r.start_time)):
        best[(r.variant, r.seed, r.fold)] = r
    return list(best.values())


def read_runs(
    uri: str, grid: Mapping[str, Any], preset: str, metrics: Sequence[str], required: bool = True,
    details: bool = False,
) -> list[RunRecord]:
    """
    Every tagged run of the grid's preset in the MLflow store ``uri``, with the histories of ``metrics`` (and, with
    ``details``, the per-image scores of each FINISHED run's last validation). A store without the preset's
    experiment raises a ``ValueError`` if ``required``, else has no runs.
    """
    client, experiment = client_and_experiment(uri, experiment_name(grid, preset), create=False)
    if experiment is None:
        if not required:
            return []
        raise ValueError(f"no MLflow experiment {experiment_name(grid, preset)!r} in {uri}.")
    records = []
    for r in client.search_runs([experiment.experiment_id], max_results=50000):
        tags = r.data.tags
        if TAG + "variant" not in tags:
            continue
        fold = tags.get(TAG + "fold", "None")
        rec = RunRecord(
            tags[TAG + "variant"],
            int(tags[TAG + "seed"]),
            None if fold in ("", "None") else int(fold),
            r.info.status,
            wall_s=float(tags[TAG + "wall_s"]) if TAG + "wall_s" in tags else None,
            extra=tags.get(TAG + "set", "{}"),
            start_time=r.info.start_time or 0,
        )
        for metric in metrics:
            if metric in r.data.metrics:
                rec.history[metric] = {m.step: m.value for m in client.get_metric_history(r.info.run_id, metric)}
        if details and r.info.status == "FINISHED":
            rec.details = read_details(client, r.info.run_id)
        records.append(rec)
    return records


def _signed(x: float, digits: int) -> str:
    """``+0.12`` / ``−0.12`` (a true minus sign, as in the tables)."""
    return f"{'+' if x >= 0 else '−'}{abs(x):.{digits}f}"


@dataclass
class Stat:
    """mean +- std over seeds (ddof 1; 0 for one seed) of per-seed scores, and how many seeds."""

    mean: float
    std: float
    n: int

    @classmethod
    def of(cls, values: Sequence[float]) -> Stat:
        v = np.asarray(values, dtype=float)
        return cls(float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0, len(v))

    def fmt(self, scale: float = 100.0) -> str:
        return f"{self.mean * scale:.1f} ± {self.std * scale:.1f}"

    def signed(self, scale: float = 100.0, digits: int = 1) -> str:
        """``+0.4 ± 0.3`` / ``−0.4 ± 0.3``: a difference, its sign always shown (a true minus sign)."""
        return f"{_signed(self.mean * scale, digits)} ± {self.std * scale:.{digits}f}"

    @property
    def se(self) -> float:
        """The standard error of the mean (NaN for one value)."""
        return self.std / math.sqrt(self.n) if self.n > 1 else float("nan")

    @property
    def significant(self) -> bool | None:
        """The mean is at least twice its standard error (None: one value, not decidable)."""
        return None if self.n < 2 else abs(self.mean) >= 2 * self.se


def _scale(metric: str) -> float:
    """x100 for a score in [0, 1]; 1 for a metric with a unit (``..._mm``: the HC18 head-circumference error)."""
    return 1.0 if metric.endswith("_mm") else 100.0


@dataclass
class Row:
    variant: str
    runs: int
    failed: int
    seeds: int
    folds: int
    last: dict[str, Stat]
    best: dict[str, Stat]
    delta: Stat | None = None  # paired difference of the key metric (last epoch) to the baseline
    wins: tuple[int, int] | None = None  # (seed-fold pairs where the variant beats the baseline, pairs)
    minutes: float | None = None

    @property
    def significant(self) -> bool | None:
        """The key-metric difference is at least twice its standard error over seeds (None: not decidable)."""
        return None if self.delta is None else self.delta.significant


def _per_seed(records: Sequence[RunRecord], value: Any) -> dict[int, float]:
    """Per seed, the mean over its folds of ``value(record)``, skipping runs without the value."""
    by_seed: dict[int, list[float]] = defaultdict(list)
    for r in records:
        v = value(r)
        if v is not None:
            by_seed[r.seed].append(v)
    return {s: float(np.mean(v)) for s, v in by_seed.items()}


def summarise(
    records: Sequence[RunRecord],
    metrics: Sequence[str],
    key_metric: str,
    baseline: str | Mapping[str, str] | None,
    order: Sequence[str] | None = None,
) -> list[Row]:
    """
    One row per variant (in ``order``, default: the baseline first; then any others by name) over its FINISHED
    runs. Folds are averaged within a seed first, so a seed is one cross-validated score; the paired difference
    to ``baseline`` uses only the (seed, fold) runs both variants finished. ``baseline`` is one variant, or a
    mapping from a variant to its own baseline (e.g. each backbone + SRB to its backbone).
    """
    by_variant: dict[str, list[RunRecord]] = defaultdict(list)
    failed: dict[str, int] = defaultdict(int)
    for r in records:
        if r.status == "FINISHED":
            by_variant[r.variant].append(r)
        else:
            failed[r.variant] += 1
    first = [baseline] if isinstance(baseline, str) else []
    names = [v for v in (order or first) if v in by_variant or v in failed]
    names += sorted(v for v in set(by_variant) | set(failed) if v not in names)
    rows = []
    for name in names:
        runs = by_variant.get(name, [])
        last = {m: Stat.of(list(s.values())) for m in metrics if (s := _per_seed(runs, lambda r, m=m: r.last(m)))}
        best = {
            m: Stat.of(list(s.values()))
            for m in metrics
            if (s := _per_seed(runs, lambda r, m=m: r.at_best(m, key_metric)))
        }
        seeds, folds = len({r.seed for r in runs}), len({r.fold for r in runs})
        row = Row(name, len(runs), failed.get(name, 0), seeds, folds, last, best)
        walls = [r.wall_s for r in runs if r.wall_s is not None]
        row.minutes = float(np.mean(walls)) / 60 if walls else None
        ref = baseline.get(name) if isinstance(baseline, Mapping) else baseline
        base = {(r.seed, r.fold): r for r in by_variant.get(ref or "", [])}
        if ref and name != ref and base:
            pairs = [(r, base[(r.seed, r.fold)]) for r in runs if (r.seed, r.fold) in base]
            pairs = [(a, b) for a, b in pairs if a.last(key_metric) is not None and b.last(key_metric) is not None]
            if pairs:
                per_seed: dict[int, list[float]] = defaultdict(list)
                for a, b in pairs:
                    per_seed[a.seed].append(a.last(key_metric) - b.last(key_metric))
                diff = {s: float(np.mean(v)) for s, v in per_seed.items()}
                row.delta = Stat.of(list(diff.values()))
                row.wins = (sum(a.last(key_metric) > b.last(key_metric) for a, b in pairs), len(pairs))
        rows.append(row)
    return rows


def format_table(
    rows: Sequence[Row], metrics: Sequence[str], key_metric: str, baseline: str | Mapping[str, str] | None
) -> str:
    """
    Markdown: each metric at the last epoch (x100 but those in mm), the key metric at its best epoch, the paired
    delta.
    """
    short = {m: m.removeprefix("val_") for m in metrics}
    scale = {m: _scale(m) for m in metrics}
    header = ["variant", "runs (seeds x folds)"] + [short[m] for m in metrics]
    header += [f"best-epoch {short[key_metric]}"]
    if baseline:
        against = baseline if isinstance(baseline, str) else "its baseline"
        header += [f"Δ {short[key_metric]} vs {against}", "wins", "inside noise?"]
    header += ["min/run"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        runs = f"{row.runs} ({row.seeds} x {row.folds})" + (f", {row.failed} failed" if row.failed else "")
        cells = [row.variant, runs]
        cells += [row.last[m].fmt(scale[m]) if m in row.last else "—" for m in metrics]
        cells += [row.best[key_metric].fmt() if key_metric in row.best else "—"]
        if baseline:
            if row.delta is None:
                cells += ["—", "—", "—"]
            else:
                cells += [row.delta.signed()]
                cells += [f"{row.wins[0]}/{row.wins[1]}" if row.wins else "—"]
                sig = row.significant
                cells += ["n/a (1 seed)" if sig is None else ("no" if sig else "yes")]
        cells += [f"{row.minutes:.1f}" if row.minutes is not None else "—"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _paired_runs(
    records: Sequence[RunRecord], baseline: str | Mapping[str, str] | None, order: Sequence[str] | None = None,
) -> list[tuple[str, str, list[tuple[RunRecord, RunRecord]]]]:
    """
    Per variant with a baseline (in ``order``, then by name): ``(variant, baseline, [(run, baseline run), ...])``
    over the (seed, fold) keys both FINISHED, in seed then fold order.
    """
    done = {(r.variant, r.seed, r.fold): r for r in records if r.status == "FINISHED"}
    names = list(dict.fromkeys([*(order or []), *sorted({r.variant for r in records})]))
    found = []
    for name in names:
        ref = baseline.get(name) if isinstance(baseline, Mapping) else baseline
        if not ref or ref == name:
            continue
        keys = sorted((s, f) for v, s, f in done if v == name and (ref, s, f) in done)
        found.append((name, ref, [(done[(name, *k)], done[(ref, *k)]) for k in keys]))
    return found


def paired_table(
    records: Sequence[RunRecord], metrics: Sequence[str], key_metric: str, baseline: str | Mapping[str, str] | None,
    order: Sequence[str] | None = None,
) -> str:
    """
    Markdown, one row per variant that has a baseline: the paired difference (variant - baseline, last epoch) of
    each metric over the (seed, fold) runs both FINISHED, as mean ± std over those pairs, the key metric's
    standard error and wins (for a key metric in mm, an error, a win is a lower value), the key metric's difference
    at each run's best epoch (optimistic, as in :func:`format_table`, but less shaken by the last epoch's swing),
    the 2-standard-error rule over pairs, and the key metric's per-pair differences (in seed, then fold order).
    Pairs are the runs themselves, not seed means: with folds this is the finer test (its pairs share training
    images, so its standard error is, if anything, optimistic). Empty when no variant has a paired baseline.
    """
    lines = []
    for name, ref, runs in _paired_runs(records, baseline, order):
        deltas: dict[str, list[float]] = {}  # per metric, variant - baseline of each pair (unscaled)
        for m in metrics:
            pairs = [(a.last(m), b.last(m)) for a, b in runs]
            if pairs and all(a is not None and b is not None for a, b in pairs):
                deltas[m] = [a - b for a, b in pairs]
        key = deltas.get(key_metric)
        if not key:
            continue
        n, stat = len(key), Stat.of(key)
        cells = [name, ref, str(n)]
        cells += [Stat.of(deltas[m]).signed(_scale(m), 2) if m in deltas else "—" for m in metrics]
        best = [a.at_best(key_metric, key_metric) - b.at_best(key_metric, key_metric) for a, b in runs]
        cells.append(Stat.of(best).signed(_scale(key_metric), 2))
        cells.append(f"{stat.se * _scale(key_metric):.2f}" if n > 1 else "—")
        lower_is_better = key_metric.endswith("_mm")
        cells.append(f"{sum((x < 0) if lower_is_better else (x > 0) for x in key)}/{n}")
        cells.append("n/a (1 pair)" if stat.significant is None else ("no" if stat.significant else "yes"))
        cells.append(", ".join(_signed(x * _scale(key_metric), 2) for x in key))
        lines.append("| " + " | ".join(cells) + " |")
    if not lines:
        return ""
    short = [m.removeprefix("val_") for m in metrics]
    k = short[metrics.index(key_metric)]
    header = ["variant", "baseline", "pairs", *(f"Δ {s}" for s in short), f"Δ best-epoch {k}", f"SE of Δ {k}",
              "wins", "inside noise (pairs)?", f"Δ {k} per pair"]
    return "\n".join(["| " + " | ".join(header) + " |", "|" + "---|" * len(header), *lines]) + "\n"


def paired_deltas(
    records: Sequence[RunRecord], key_metric: str, baseline: str | Mapping[str, str] | None,
    order: Sequence[str] | None = None,
) -> dict[str, tuple[str, list[float]]]:
    """
    Per variant with a baseline: ``(baseline, [variant - baseline of the key metric, last epoch, per pair])`` over
    the (seed, fold) runs both FINISHED, in seed then fold order (the pairs of :func:`paired_table`).
    """
    found: dict[str, tuple[str, list[float]]] = {}
    for name, ref, runs in _paired_runs(records, baseline, order):
        pairs = [(a.last(key_metric), b.last(key_metric)) for a, b in runs]
        pairs = [(a, b) for a, b in pairs if a is not None and b is not None]
        if pairs:
            found[name] = (ref, [a - b for a, b in pairs])
    return found


def plot_summary(
    rows: Sequence[Row], records: Sequence[RunRecord], key_metric: str, path: Path,
    baseline: str | Mapping[str, str] | None = None,
) -> None:
    """
    A forest plot of the paired difference to the baseline (key metric, last epoch; per variant: the mean over
    (seed, fold) pairs with its 95% t interval, dots: the pairs, zero marked) beside the key metric's mean curve
    per variant. Without a baseline (or a pair) the left panel says so.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from scipy import stats

    scale = _scale(key_metric)
    deltas = paired_deltas(records, key_metric, baseline, [r.variant for r in rows])
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(13, max(3.0, 0.45 * max(len(deltas), 1) + 1.8)))
    for i, (name, (ref, d)) in enumerate(deltas.items()):
        d = np.asarray(d) * scale
        mean = float(d.mean())
        half = float(stats.t.ppf(0.975, len(d) - 1) * d.std(ddof=1) / math.sqrt(len(d))) if len(d) > 1 else 0.0
        ax.errorbar(mean, i, xerr=half, fmt="s", color="tab:blue" if "SRB" in name else "tab:gray", capsize=4)
        ax.plot(d, [i] * len(d), "k.", ms=4, alpha=0.6)
    ax.axvline(0.0, color="k", lw=1)
    ax.set_yticks(range(len(deltas)), [f"{n} − {ref}" for n, (ref, _) in deltas.items()])
    ax.set_ylim(max(len(deltas), 1) - 0.5, -0.5)  # the first row on top
    better = "lower is better" if key_metric.endswith("_mm") else "higher is better"
    unit = "" if scale == 1.0 else " x100"
    ax.set_xlabel(f"Δ {key_metric}{unit}, last epoch ({better}): mean and 95% interval over pairs; dots: pairs")
    if not deltas:
        ax.text(0.5, 0.5, "no paired baseline", ha="center", va="center", transform=ax.transAxes)
    for name in [r.variant for r in rows if key_metric in r.last]:
        curves = [r.history[key_metric] for r in records if r.variant == name and key_metric in r.history]
        if not curves:
            continue
        steps = sorted(set.intersection(*(set(c) for c in curves)))
        ax2.plot(steps, [np.mean([c[s] for c in curves]) * scale for s in steps], label=name)
    ax2.set_xlabel("epoch")
    ax2.set_ylabel(f"{key_metric}{unit} (mean over runs)")
    ax2.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def report(
    grid: Mapping[str, Any],
    preset: str,
    out: Path,
    order: Sequence[str] | None = None,
    merge: Sequence[str] = (),
    variants: Sequence[str] | None = None,
    seeds: Sequence[int] | None = None,
    folds: Sequence[int] | None = None,
    uri: str | None = None,
) -> str:
    """
    Read the preset's runs back from MLflow (the store ``uri``, default ``<out>/mlflow.db``, and the stores
    ``merge``, e.g. runs of the same experiment made earlier or on another machine), write
    ``<out>/results.md`` and ``<out>/summary.png``. The report covers the preset's seeds and folds (or
    ``seeds`` / ``folds``): presets that share one experiment (``"experiment"``) report their own split.
    ``variants`` keeps only those rows.
    """
    metrics = list(grid["metrics"]) + list(grid.get("test_metrics", []))
    spec = grid["presets"][preset]
    keep_seeds = set(seeds if seeds is not None else spec.get("seeds", [0]))
    fold_list = folds if folds is not None else spec.get("folds")
    own = [uri] if uri else [tracking_uri(out)] if (out / "mlflow.db").is_file() else []  # opening one creates it
    uris = [*own, *merge]
    # any one store may lack the experiment (a merged folder's per-worker stores); all of them together may not
    comparisons = spec.get("comparisons")
    found = [r for u in uris for r in read_runs(u, grid, preset, metrics, required=False, details=bool(comparisons))]
    if not found:
        raise ValueError(f"no runs of MLflow experiment {experiment_name(grid, preset)!r} in {', '.join(uris)}.")
    records = [
        r
        for r in found
        if r.seed in keep_seeds
        and (fold_list is None or r.fold in fold_list)
        and (not variants or r.variant in variants)
    ]
    records = latest_per_job(records)
    baseline = grid.get("baselines", grid["baseline"])
    rows = summarise(records, metrics, grid["key_metric"], baseline, order or list(grid["variants"]))
    table = format_table(rows, metrics, grid["key_metric"], baseline)
    if any(grid["key_metric"] in r.last for r in rows):  # not when every run failed
        plot_summary(rows, records, grid["key_metric"], out / "summary.png", baseline)
    extras = sorted({r.extra for r in records} - {"{}"})
    text = (
        f"Grid `{grid['name']}`, preset `{preset}`, MLflow store(s) "
        f"{', '.join(f'`{u}`' for u in uris)}, experiment "
        f"`{experiment_name(grid, preset)}`.\n"
        f"Bundle overrides of the preset: `{json.dumps(grid['presets'][preset].get('overrides', {}))}`"
        + (f"; from --set: {', '.join(f'`{e}`' for e in extras)}" if extras else "")
        + ".\nScores x100 (errors in mm as they are): mean ± std over seeds of each seed's mean over its folds, "
        "metrics at the last epoch.\n\n"
        + table
    )
    pairs = paired_table(records, metrics, grid["key_metric"], baseline, order or list(grid["variants"]))
    if pairs:
        text += (
            "\nPer (seed, fold) pair, variant - baseline at the last epoch (x100; in mm as they are, where a win is a "
            "lower error), mean ± std over the pairs; inside the noise unless the key metric's mean is at least "
            "twice its standard error over the pairs:\n\n" + pairs
        )
    if comparisons:
        from workflows.confirmatory import comparison_table, decide

        table, tests = comparison_table(records, comparisons, grid["key_metric"])
        planned = len(keep_seeds) * (len(fold_list) if fold_list else 1)
        text += (
            "\nThe preset's planned comparisons (variant − reference, per (seed, fold) pair at the last epoch unless "
            "named; ×100, HC errors in mm; a win is a higher score or a lower error or share): two-sided paired "
            "t-test and sign test.\n\n" + table + "\n" + decide(tests, comparisons, planned) + "\n"
        )
    (out / "results.md").write_text(text)
    return text
