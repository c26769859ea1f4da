"""One JSON record per run, written atomically and never over another; records to tables.

A record holds: method, seed, config, metrics, history, data source, device, seconds, time,
and the run's identity (settings, data content and size, teacher and own weights, device
type, precision, engine and recipe code; see `kdlib.identity`).

`table(records)` gives mean ± std over seeds per method, with the reference notebook's and
the PyTorch tutorial's accuracies. A
table, and the paired differences, only ever put together records that may be compared:
`comparable` keeps the runs that match the newest one in data, sizes, teacher, shared
settings and code, and per method the settings of its newest run; it says what it left out.
"""

from __future__ import annotations

import json
import os
import uuid
import warnings
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from . import identity
from .files import write_text
from .methods import DECLARED, KNOBS, METHODS, ORDER, rows as lesson_rows

# The two published tables this series is measured against (one run each, percent): each
# method's number is declared on its `Method` (kdlib.methods); the teachers' are here.
# The reference's distillation rows distilled from an untrained teacher (its notebook never
# loaded the trained one): its "KD" is this series' kd_untrained control, and its attention
# rows are marked as such beside ours, which distil from a trained teacher.
REFERENCE = {"teacher": 83.84, **{m.name: m.reference for m in METHODS.values() if m.reference is not None}}
REFERENCE_UNTRAINED = {m.name for m in METHODS.values() if m.reference_untrained}
REFERENCE_SOURCE = ("the notebook knowledge_distillation_CNN.ipynb of github.com/CharvakaSynapse/"
                    "Knowledge-Distillation: one run each, its own BatchNorm/ELU models and recipe "
                    "(all 50,000 training images, 10 epochs, no augmentation); its distillation rows "
                    "used an untrained teacher")
TUTORIAL = {"teacher": 75.10, **{m.name: m.tutorial for m in METHODS.values() if m.tutorial is not None}}
TUTORIAL_SOURCE = ("the PyTorch knowledge-distillation tutorial (pytorch.org/tutorials/beginner/"
                   "knowledge_distillation_tutorial.html), as executed for its PyTorch 2.0 build and kept "
                   "by the pytorch.apachecn.org mirror: one run each, DeepNN/LightNN, all 50,000 training "
                   "images, 10 epochs, Adam 1e-3, no augmentation (each rebuild of the page re-runs it, "
                   "and its figures move by about a point)")


def record(run, name: str | None = None, **extra) -> dict:
    """The JSON-ready record of a `kdlib.train.Run`; `name` overrides the method (e.g. "teacher")."""
    from dataclasses import asdict
    return {"method": name or run.method, "seed": run.config.seed, "config": asdict(run.config),
            "metrics": run.metrics, "history": run.history, "source": run.source,
            "device": run.device, "seconds": run.seconds, "together": run.together, "time": now(), **extra}


def now() -> str:
    """UTC time to the microsecond, ISO 8601: records sort by it (file times change on copy)."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def save(rec: dict, folder: str | os.PathLike) -> Path:
    """Write a record as a new file in `folder`; an earlier record is never overwritten and a
    failed or interrupted write leaves no file, partial or temporary."""
    rec = {**rec, "time": rec.get("time") or now()}
    stamp = rec["time"].replace(":", "").replace("-", "")[:15]
    path = Path(folder) / f"{rec['method']}-seed{rec['seed']}-{stamp}-{uuid.uuid4().hex[:6]}.json"
    return write_text(path, json.dumps(rec, indent=1))


def load(folder: str | os.PathLike) -> list[dict]:
    """Every record in `folder`, oldest first by the time stored in it (not the file's)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    records = [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]
    return sorted(records, key=lambda r: r.get("time", ""))


class RunFolderError(FileNotFoundError):
    """A folder given as a run's that holds no run records."""


def of_run(run_dir: str | os.PathLike) -> list[dict]:
    """The records of a series run folder or a published copy of one (its results/), or an
    error naming the folder where it holds none."""
    records = load(Path(run_dir) / "results")
    if not records:
        raise RunFolderError(f"{run_dir} holds no run records (results/*.json): give the folder of a series "
                                "run (runs/...) or a published copy of one (published/...).")
    return records


def latest_per_seed(records: list[dict]) -> list[dict]:
    """The newest record of each (method, seed): re-running a seed replaces it in tables.
    `records` oldest first, as `load` and `comparable` give them."""
    latest = {}
    for rec in records:
        latest[(rec["method"], rec["seed"])] = rec
    return list(latest.values())


def _settings(rec: dict, own: bool) -> dict:
    """The settings of a record that decide its result: without the seed, and with or without
    (own) the method's own knobs; the knobs its method does not read are never compared."""
    config = rec.get("settings") or {k: v for k, v in rec.get("config", {}).items()
                                     if k not in identity.DISPLAY_ONLY}
    recipe = rec.get("recipe", rec["method"])  # e.g. "kd" for the "kd_untrained" control
    method_knobs = DECLARED[recipe].knobs if recipe in DECLARED else ()
    return {k: v for k, v in config.items()
            if k != "seed" and (k not in KNOBS or (own and k in method_knobs))}


def _own_teacher(rec: dict) -> bool:
    """Whether the run learnt from a teacher of its own on purpose (a control, 09's teachers)."""
    method = DECLARED.get(rec["method"])
    return bool(rec.get("control")) or (method is not None and method.teacher != "run")


def _own_settings(rec: dict) -> set[str]:
    """The settings that its method declares as what makes it itself (08's ways of teaching)."""
    method = DECLARED.get(rec["method"])
    return set(method.settings) if method is not None else set()


def _differences(a: dict, b: dict) -> list[str]:
    """The names of the fields in which two records' identities differ. A run with a teacher of
    its own (KD from an untrained teacher) has another teacher on purpose, and one of 08's has
    other settings on purpose: those are not compared."""
    keys = [*identity.COMPARED] + ([] if _own_teacher(a) or _own_teacher(b) else ["teacher"])
    out = [k for k in keys if a.get(k) != b.get(k) and not (k == "teacher" and None in (a.get(k), b.get(k)))]
    sa, sb = _settings(a, own=False), _settings(b, own=False)
    declared = _own_settings(a) | _own_settings(b)
    return out + [k for k in sorted(set(sa) | set(sb)) if sa.get(k) != sb.get(k) and k not in declared]


def comparable(records: list[dict], warn: bool = True) -> list[dict]:
    """The records one table may show together, oldest first, each (method, seed) once.

    The newest student run that is not a control sets what is compared: a student record is
    kept when its data, sizes, device type, precision, code, teacher (a CE run trained without
    one matches any; a control's is not compared) and settings other than its method's knobs
    equal that run's; within a method, only the records with the knobs of its newest kept
    run. The teacher row is the teacher whose weights the kept students distilled from: its
    newest record in the students' device type and precision where there is one, else its newest.
    Whatever is left out is said in a warning.
    """
    records = sorted(records, key=lambda r: r.get("time", ""))
    students = [r for r in records if r["method"] != "teacher"]
    notes: dict[str, list[str]] = {}
    kept: list[dict] = []
    anchor = records[-1] if records else {}
    if students:
        anchor = next((r for r in reversed(students) if not _own_teacher(r) and not _own_settings(r)), students[-1])
        own_settings: dict[str, dict] = {}
        for rec in reversed(students):
            differ = _differences(rec, anchor)
            if not differ:
                own = own_settings.setdefault(rec["method"], _settings(rec, own=True))
                mine = _settings(rec, own=True)
                differ = [f"{k}" for k in sorted(set(own) | set(mine)) if own.get(k) != mine.get(k)]
                if not differ:
                    kept.append(rec)
                    continue
            notes.setdefault(rec["method"], []).extend(differ)
        kept.reverse()
        teacher_id = next((r["teacher"] for r in reversed(kept) if r.get("teacher") and not _own_teacher(r)), None)
        teachers = [r for r in records if r["method"] == "teacher" and _is_teacher(r, teacher_id, anchor)]
    else:
        teachers = [r for r in records if r["method"] == "teacher"]
    # Older records of the students' own teacher (a resumed series measures it again) are
    # superseded by its newest, as a seed's older runs are; only another teacher is left out.
    left_out = [r for r in records if r["method"] == "teacher" and r not in teachers]
    if left_out and students:
        notes.setdefault("teacher", []).append("not the teacher of these students")
    # Its newest record measured as the students were (device type, precision), if there is one.
    alike = [r for r in teachers if all(r.get(k) == anchor.get(k) for k in ("device_type", "precision"))]
    shown = (alike or teachers)[-1:] + kept
    if warn:
        for method, fields in notes.items():
            n = len(left_out) if method == "teacher" else (
                sum(r["method"] == method for r in records) - sum(r["method"] == method for r in shown))
            warnings.warn(f"Left out {n} {method!r} record(s) not comparable with the newest run "
                          f"({anchor['method']} seed {anchor['seed']}, {anchor.get('time', '?')}): they "
                          f"differ in {', '.join(dict.fromkeys(fields))}. Keep each experiment in its "
                          "own results_dir to compare it in full.", stacklevel=3)
    return latest_per_seed(shown)


def _is_teacher(rec: dict, teacher_id: str | None, anchor: dict) -> bool:
    if rec.get("weights") is not None:
        return rec["weights"] == teacher_id
    # Records written before weights were stored: the teacher trained on the same data.
    return all(rec.get(k) == anchor.get(k) for k in ("source", "n_train", "n_test"))


def of_lesson(records: list[dict], lesson: str | None) -> list[dict]:
    """The teacher's records and those of the rows `lesson` shows (`kdlib.methods.rows`; for
    "methods", also any name not declared there); None: all."""
    if lesson is None:
        return records
    shown = {"teacher", *lesson_rows(lesson)}
    return [r for r in records if r["method"] in shown or (lesson == "methods" and r["method"] not in DECLARED)]


def frame(records: list[dict], lesson: str | None = None) -> pd.DataFrame:
    """One row per run: method, seed, accuracy (%), agreement (%), ECE, seconds; with `lesson`,
    only the teacher and the rows that lesson shows (`kdlib.methods.rows`; for "methods", also
    any name not declared there)."""
    records = of_lesson(records, lesson)
    rows = [{"method": r["method"], "seed": r["seed"],
             "accuracy": 100 * r["metrics"]["accuracy"],
             "teacher_agreement": 100 * r["metrics"].get("teacher_agreement", float("nan")),
             "ece": r["metrics"].get("ece", float("nan")), "seconds": r["seconds"]}
            for r in comparable(records)]
    return pd.DataFrame(rows, columns=["method", "seed", "accuracy", "teacher_agreement", "ece", "seconds"])


RUN_COLUMNS = ["name", "method", "seed", "epochs", "accuracy", "seconds", "together", "device", "sweep"]


def runs(records: list[dict]) -> pd.DataFrame:
    """One row per training run, in the order they finished: name (what tables call it),
    method (its recipe), seed, epochs, test accuracy (%), seconds, together (how many models
    trained in one stacked network; seconds is then this run's share of the group's time, so
    the column sums to the time spent), device, and the sweep's "parameter=value" if any."""
    rows = [{"name": r["method"], "method": r.get("recipe", "ce" if r["method"] == "teacher" else r["method"]),
             "seed": r["seed"], "epochs": r["config"]["epochs"],
             "accuracy": round(100 * r["metrics"]["accuracy"], 2), "seconds": round(r["seconds"], 1),
             "together": r.get("together", 1), "device": r["device"],
             "sweep": f"{r['sweep']['parameter']}={r['sweep']['value']:g}" if r.get("sweep") else ""}
            for r in sorted(records, key=lambda r: r.get("time", ""))]
    return pd.DataFrame(rows, columns=RUN_COLUMNS)


def table(records: list[dict], lesson: str = "methods") -> pd.DataFrame:
    """Mean ± std over seeds per method, in the series' order, with the reference numbers.

    Columns: method, n_seeds, mean, std, reference (accuracies in percent), plus mean
    teacher agreement, ECE and seconds. std is the sample std (ddof=1), NaN for one seed.
    Only comparable records are used (see `comparable`).
    """
    runs = frame(records, lesson)
    if runs.empty:
        return pd.DataFrame(columns=["method", "n_seeds", "mean", "std", "reference", "reference_teacher", "tutorial"])
    grouped = runs.groupby("method")
    out = pd.DataFrame({
        "n_seeds": grouped["seed"].nunique(),
        "mean": grouped["accuracy"].mean(),
        "std": grouped["accuracy"].std(ddof=1),  # NaN for one seed: no spread to show
        "teacher_agreement": grouped["teacher_agreement"].mean(),
        "ece": grouped["ece"].mean(),
        "seconds": grouped["seconds"].mean(),
    })
    out["reference"] = [REFERENCE.get(m, float("nan")) for m in out.index]
    # what the reference's row distilled from: only its distillation rows have a teacher
    out["reference_teacher"] = ["untrained" if m in REFERENCE_UNTRAINED else "" for m in out.index]
    out["tutorial"] = [TUTORIAL.get(m, float("nan")) for m in out.index]
    out = out.loc[in_order(out.index)].reset_index()
    return out[["method", "n_seeds", "mean", "std", "reference", "reference_teacher", "tutorial",
                "teacher_agreement", "ece", "seconds"]]


def in_order(names) -> list[str]:
    """Row names in the series' order (kdlib.methods.ORDER), unknown names last, sorted."""
    names = set(names)
    return [m for m in ORDER if m in names] + sorted(names - set(ORDER))


def per_class_accuracy(records: list[dict], lesson: str = "methods") -> dict[str, list[float]]:
    """Per-class test accuracy (fractions) of each method, averaged over its seeds, in ORDER."""
    runs: dict[str, list[list[float]]] = {}
    for rec in comparable(of_lesson(records, lesson)):
        runs.setdefault(rec["method"], []).append(rec["metrics"]["per_class_accuracy"])
    return {m: [sum(col) / len(col) for col in zip(*runs[m])] for m in in_order(runs)}


def map_similarity(records: list[dict], lesson: str = "methods", by_seed: bool = False) -> pd.DataFrame:
    """How close each method's attention maps came to the teacher's on the test set: the mean
    over seeds of the cosine similarity per kind and stage (`kdlib.evaluation.map_similarity`),
    columns "act 1", "act 2", "grad 1", "grad 2", in ORDER; with `by_seed`, one row per run
    (a "seed" column, no mean) for paired comparisons. Runs without a teacher have none;
    controls are left out: theirs is measured against their own teacher (an untrained one)."""
    rows = []
    for rec in comparable(of_lesson(records, lesson), warn=False):
        found = rec["metrics"].get("map_similarity")
        if found and not rec.get("control"):
            rows.append({"method": rec["method"], "seed": rec["seed"],
                         **{f"{kind} {i + 1}": value for kind, values in found.items() for i, value in enumerate(values)}})
    if not rows:
        return pd.DataFrame(columns=["method", "seed"] if by_seed else ["method"])
    if by_seed:
        return pd.DataFrame(rows)
    out = pd.DataFrame(rows).drop(columns="seed").groupby("method").mean()
    return out.loc[in_order(out.index)].reset_index()


FIDELITY_COLUMNS = ["train agreement", "train KL", "test agreement", "test KL"]


def fidelity(records: list[dict], lesson: str = "methods", by_seed: bool = False) -> pd.DataFrame:
    """How closely each method's students match the teacher they learnt from
    (`kdlib.evaluation.fidelity`), mean over seeds: top-1 agreement (%) and KL(teacher ||
    student) on the training images and on the test images, in ORDER; with `by_seed`, one row
    per run (a "seed" column, no mean). Runs recorded without it (before it was measured) are
    left out."""
    rows = []
    for rec in comparable(of_lesson(records, lesson), warn=False):
        found = rec["metrics"].get("fidelity")
        if found:
            rows.append({"method": rec["method"], "seed": rec["seed"], **{f"{split} {name}": 100 * value if name == "agreement" else value
                                                     for split, values in found.items()
                                                     for name, value in (("agreement", values["agreement"]),
                                                                         ("KL", values["kl"]))}})
    if not rows:
        return pd.DataFrame(columns=["method", *(["seed"] if by_seed else []), *FIDELITY_COLUMNS])
    if by_seed:
        return pd.DataFrame(rows)
    out = pd.DataFrame(rows).groupby("method")[FIDELITY_COLUMNS].mean()
    return out.loc[in_order(out.index)].reset_index()


MATCHED_MAPS = {m.name: m.transfers for m in METHODS.values() if m.transfers}


def paired_differences(records: list[dict], baseline: str = "ce", lesson: str = "methods") -> pd.DataFrame:
    """Accuracy of each method minus the baseline's, paired by seed (points of %).

    Columns: n_pairs, mean_diff, std_diff, the 95% t-interval of the mean difference
    (ci95_low, ci95_high), p_value (paired t-test, two-sided) and excludes_zero: whether the
    interval excludes zero, uncorrected (one comparison on its own; a family of them needs Holm's
    correction, `comparisons(correct=True)`).
    Needs at least 2 seeds.
    """
    runs = frame(records, lesson).pivot_table(index="seed", columns="method", values="accuracy")
    methods = [m for m in runs.columns if m not in (baseline, "teacher")] if baseline in runs else []
    return comparisons(records, [(method, baseline) for method in methods], correct=False)


COMPARISON_COLUMNS = ["method", "baseline", "n_pairs", "mean_diff", "std_diff", "ci95_low", "ci95_high",
                      "p_value", "excludes_zero"]


def comparisons(records: list[dict], pairs: list[tuple[str, str]], correct: bool = True,
                measure: str = "accuracy") -> pd.DataFrame:
    """Each (method, baseline) pair's accuracy difference (or another column of `frame`, such as
    teacher_agreement), paired by seed, as in `paired_differences`; with `correct`, also Holm's
    step-down correction for making all these comparisons at once (p_holm, and holm: whether the
    difference survives it at 5%). Making eight comparisons, one would pass by chance far more
    often than one in twenty; Holm keeps that chance at 5% for the whole family without assuming
    the tests independent."""
    runs = frame(records).pivot_table(index="seed", columns="method", values=measure)
    rows = []
    for method, baseline in pairs:
        if method not in runs or baseline not in runs:
            continue
        rows.append({"method": method, "baseline": baseline, **interval(runs[method] - runs[baseline])})
    out = pd.DataFrame(rows, columns=COMPARISON_COLUMNS)
    if correct:
        out["p_holm"] = holm(out["p_value"].tolist())
        out["holm"] = out["p_holm"] < 0.05
    return out


def interval(differences: pd.Series) -> dict:
    """The mean of per-seed differences (NaN pairs dropped) with its 95% t-interval and the
    paired t-test's two-sided p-value: n_pairs, mean_diff, std_diff, ci95_low, ci95_high,
    p_value, excludes_zero (the interval excludes zero). Needs 2 pairs for an interval."""
    from scipy import stats

    diff = differences.dropna()
    n = len(diff)
    std = diff.std(ddof=1) if n > 1 else float("nan")
    half = stats.t.ppf(0.975, n - 1) * std / n ** 0.5 if n > 1 else float("nan")
    if n < 2:
        p = float("nan")
    elif std == 0:
        p = 0.0 if diff.mean() != 0 else 1.0
    else:
        p = float(2 * stats.t.sf(abs(diff.mean()) / (std / n ** 0.5), n - 1))
    return {"n_pairs": n, "mean_diff": diff.mean(), "std_diff": std, "ci95_low": diff.mean() - half,
            "ci95_high": diff.mean() + half, "p_value": p,
            "excludes_zero": bool(n > 1 and (diff.mean() - half > 0 or diff.mean() + half < 0))}


def holm(p_values: list[float]) -> list[float]:
    """Holm-adjusted p-values: the k-th smallest of m is multiplied by m - k + 1, and each
    adjusted value is at least the one before it (NaN stays NaN and does not count)."""
    known = sorted((p, i) for i, p in enumerate(p_values) if p == p)
    adjusted, running = [float("nan")] * len(p_values), 0.0
    for k, (p, i) in enumerate(known):
        running = max(running, min(1.0, (len(known) - k) * p))
        adjusted[i] = running
    return adjusted


def write_csv(tab: pd.DataFrame, path: str | os.PathLike) -> Path:
    """The published columns (method, n_seeds, mean, std, reference, tutorial), percent to 2 decimals."""
    return write_text(path, tab[["method", "n_seeds", "mean", "std", "reference", "tutorial"]].round(2)
                      .to_csv(index=False))


def format_table(tab: pd.DataFrame) -> str:
    """The table as Markdown: accuracy as mean ± std (%), the mean alone for one seed; the
    reference column's source as a footnote."""
    lines = ["| method | seeds | accuracy (%) | reference (%)¹ | tutorial (%)² | agreement with teacher (%) | ECE |",
             "|---|---|---|---|---|---|---|"]
    for r in tab.itertuples():
        accuracy = f"{r.mean:.2f}" if r.n_seeds < 2 else f"{r.mean:.2f} ± {r.std:.2f}"
        reference = "" if r.reference != r.reference else f"{r.reference:.2f}" + (
            " (untrained teacher)" if r.reference_teacher == "untrained" else "")
        tutorial = "" if r.tutorial != r.tutorial else f"{r.tutorial:.2f}"
        agreement = "" if r.teacher_agreement != r.teacher_agreement else f"{r.teacher_agreement:.1f}"
        lines.append(f"| {r.method} | {r.n_seeds} | {accuracy} | {reference} | {tutorial} | {agreement} | {r.ece:.3f} |")
    return "\n".join(lines + ["", f"¹ Reference: {REFERENCE_SOURCE}.", f"² Tutorial: {TUTORIAL_SOURCE}."])


P_COLUMNS = ("p_value", "p_holm")


def p_text(p: float) -> str:
    """A p-value as a reader should see it: "< 0.001", or three significant digits."""
    return "< 0.001" if p < 0.001 else f"{p:.3g}"


def shown(frame: pd.DataFrame, digits: int = 2) -> pd.DataFrame:
    """A table as the notebooks display it: numbers rounded, p-values as `p_text`, columns with
    no value at all left out (a reference column of a profile it does not apply to), and a
    published teacher's 0 s of training as empty. `excludes_zero` is shown as what it is, a
    reading without Holm's correction, so that no table column looks like a verdict."""
    out = frame.copy().rename(columns={"excludes_zero": "excludes_zero_uncorrected"})
    if "seconds" in out and "method" in out:
        out.loc[(out["method"] == "teacher") & (out["seconds"] == 0), "seconds"] = float("nan")
    for column in P_COLUMNS:
        if column in out:
            out[column] = [p_text(p) if p == p else "" for p in out[column]]
    out = out.dropna(axis=1, how="all")
    out = out.loc[:, [not (out[c].astype(str).str.strip() == "").all() for c in out.columns]]
    return out.round(digits)

