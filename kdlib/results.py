"""One JSON record per run, written atomically and never over another; records to tables.

A record holds: method, seed, config, metrics, history, data source, device, seconds, time.
`table(records)` gives mean ± std over seeds per method, with the reference accuracies.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from dataclasses import asdict
from pathlib import Path

import pandas as pd

# The reference table this series starts from (one run each, percent).
REFERENCE = {"teacher": 83.84, "ce": 72.35, "kd": 74.54, "grad_at": 72.50,
             "act_at": 72.69, "kd_grad_at": 73.29}
ORDER = list(REFERENCE)


def record(run, name: str | None = None, **extra) -> dict:
    """The JSON-ready record of a `kdlib.train.Run`; `name` overrides the method (e.g. "teacher")."""
    return {"method": name or run.method, "seed": run.config.seed, "config": asdict(run.config),
            "metrics": run.metrics, "history": run.history, "source": run.source,
            "device": run.device, "seconds": run.seconds,
            "time": time.strftime("%Y-%m-%dT%H:%M:%S"), **extra}


def save(rec: dict, folder: str | os.PathLike) -> Path:
    """Write a record as a new file in `folder`; an earlier record is never overwritten and a
    crash mid-write leaves no partial file (written to a temporary name, then renamed)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    stem = f"{rec['method']}-seed{rec['seed']}-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
    path = folder / f"{stem}.json"
    tmp = folder / f".{stem}.tmp"
    tmp.write_text(json.dumps(rec, indent=1))
    os.replace(tmp, path)
    return path


def load(folder: str | os.PathLike) -> list[dict]:
    """Every record in `folder`, oldest first."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"), key=os.path.getmtime)]


def latest_per_seed(records: list[dict]) -> list[dict]:
    """The newest record of each (method, seed): re-running a seed replaces it in tables."""
    latest = {}
    for rec in records:
        latest[(rec["method"], rec["seed"])] = rec
    return list(latest.values())


def frame(records: list[dict]) -> pd.DataFrame:
    """One row per run: method, seed, accuracy (%), agreement (%), ECE, seconds."""
    rows = [{"method": r["method"], "seed": r["seed"],
             "accuracy": 100 * r["metrics"]["accuracy"],
             "teacher_agreement": 100 * r["metrics"].get("teacher_agreement", float("nan")),
             "ece": r["metrics"].get("ece", float("nan")), "seconds": r["seconds"]}
            for r in latest_per_seed(records)]
    return pd.DataFrame(rows, columns=["method", "seed", "accuracy", "teacher_agreement", "ece", "seconds"])


def table(records: list[dict]) -> pd.DataFrame:
    """Mean ± std over seeds per method, in the series' order, with the reference numbers.

    Columns: method, n_seeds, mean, std, reference (accuracies in percent), plus mean
    teacher agreement, ECE and seconds. std is the sample std (ddof=1); 0 for one seed.
    """
    runs = frame(records)
    if runs.empty:
        return pd.DataFrame(columns=["method", "n_seeds", "mean", "std", "reference"])
    grouped = runs.groupby("method")
    out = pd.DataFrame({
        "n_seeds": grouped["seed"].nunique(),
        "mean": grouped["accuracy"].mean(),
        "std": grouped["accuracy"].std(ddof=1).fillna(0.0),
        "teacher_agreement": grouped["teacher_agreement"].mean(),
        "ece": grouped["ece"].mean(),
        "seconds": grouped["seconds"].mean(),
    })
    out["reference"] = [REFERENCE.get(m, float("nan")) for m in out.index]
    known = [m for m in ORDER if m in out.index] + sorted(m for m in out.index if m not in ORDER)
    out = out.loc[known].reset_index()
    return out[["method", "n_seeds", "mean", "std", "reference", "teacher_agreement", "ece", "seconds"]]


def per_class_accuracy(records: list[dict]) -> dict[str, list[float]]:
    """Per-class test accuracy (fractions) of each method, averaged over its seeds, in ORDER."""
    runs: dict[str, list[list[float]]] = {}
    for rec in latest_per_seed(records):
        runs.setdefault(rec["method"], []).append(rec["metrics"]["per_class_accuracy"])
    known = [m for m in ORDER if m in runs] + sorted(m for m in runs if m not in ORDER)
    return {m: [sum(col) / len(col) for col in zip(*runs[m])] for m in known}


def paired_differences(records: list[dict], baseline: str = "ce") -> pd.DataFrame:
    """Accuracy of each method minus the baseline's, paired by seed (points of %).

    Columns: n_pairs, mean_diff, std_diff, the 95% t-interval of the mean difference
    (ci95_low, ci95_high) and beyond_noise: whether that interval excludes zero, i.e. the
    difference is larger than seed-to-seed noise explains. Needs at least 2 seeds.
    """
    from scipy import stats

    runs = frame(records).pivot_table(index="seed", columns="method", values="accuracy")
    rows = []
    for method in runs.columns:
        if method in (baseline, "teacher") or baseline not in runs:
            continue
        diff = (runs[method] - runs[baseline]).dropna()
        n = len(diff)
        std = diff.std(ddof=1) if n > 1 else float("nan")
        half = stats.t.ppf(0.975, n - 1) * std / n ** 0.5 if n > 1 else float("nan")
        rows.append({"method": method, "n_pairs": n, "mean_diff": diff.mean(), "std_diff": std,
                     "ci95_low": diff.mean() - half, "ci95_high": diff.mean() + half,
                     "beyond_noise": bool(n > 1 and (diff.mean() - half > 0 or diff.mean() + half < 0))})
    return pd.DataFrame(rows, columns=["method", "n_pairs", "mean_diff", "std_diff", "ci95_low",
                                       "ci95_high", "beyond_noise"])


def write_csv(tab: pd.DataFrame, path: str | os.PathLike) -> Path:
    """The published columns (method, n_seeds, mean, std, reference), percent to 2 decimals."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tab[["method", "n_seeds", "mean", "std", "reference"]].round(2).to_csv(path, index=False)
    return path


def format_table(tab: pd.DataFrame) -> str:
    """The table as Markdown: accuracy as mean ± std (%)."""
    lines = ["| method | seeds | accuracy (%) | reference (%) | agreement with teacher (%) | ECE |",
             "|---|---|---|---|---|---|"]
    for r in tab.itertuples():
        lines.append(f"| {r.method} | {r.n_seeds} | {r.mean:.2f} ± {r.std:.2f} | {r.reference:.2f} "
                     f"| {r.teacher_agreement:.1f} | {r.ece:.3f} |")
    return "\n".join(lines)
