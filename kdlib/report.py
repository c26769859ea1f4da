"""What a run shows, in sentences computed from its records: each notebook ends with one of
these, so that no sentence about a result can go stale when the numbers change.

    comparisons(records)        -> the comparisons of 06 (COMPARISONS), with Holm's correction
    teacher(run)                 -> 01: how good the teacher is, and where it fails
    baseline(records)            -> 02: the CE student, its seed spread, its gap to the teacher
    distillation(records)        -> 03: KD against CE and against both controls, and why
    attention(records, method)   -> 04, 05: the method against CE; did its maps move?
    features(records)            -> 05: the tutorial's feature methods against CE, and against its own runs
    overall(records)             -> 06: what survives the correction, in one paragraph
    sweep(runs, parameter, ...)  -> 07: the value validation chooses, and the spread around it
"""

from __future__ import annotations

import pandas as pd

from . import results
from .methods import METHODS
from .models import build, count_parameters, student_architecture, teacher_architecture

# 06's family of comparisons: every method that distils against CE, and KD against each control.
COMPARISONS = [*((m.name, "ce") for m in METHODS.values() if m.needs and not m.control),
               ("kd", "kd_untrained"), ("kd", "ls")]


def comparisons(records: list[dict], pairs=COMPARISONS) -> pd.DataFrame:
    """The paired differences of `pairs`, with Holm's correction for making them all."""
    return results.comparisons(records, pairs)


def _difference(row) -> str:
    return (f"{row['mean_diff']:+.2f} points (95% interval {row['ci95_low']:+.2f} to {row['ci95_high']:+.2f}, "
            f"{int(row['n_pairs'])} seeds)")


def _pair(records, method, baseline):
    found = results.comparisons(records, [(method, baseline)], correct=False)
    return None if found.empty or found.iloc[0]["n_pairs"] < 2 else found.iloc[0]


def verdict(records: list[dict], method: str, baseline: str = "ce") -> str:
    """One sentence, computed from the records, on how `method` compares with `baseline`:
    the two accuracies, the difference with its sign, and whether the paired 95% interval
    over seeds excludes zero (or that one seed cannot tell)."""
    tab = results.table(records).set_index("method")
    if method not in tab.index or baseline not in tab.index:
        missing = [m for m in (method, baseline) if m not in tab.index]
        return f"No comparable {' or '.join(missing)} run yet: nothing to compare."
    ours, base = tab.loc[method], tab.loc[baseline]
    paired = results.comparisons(records, [(method, baseline)], correct=False).set_index("method")
    # The paired mean difference (over the seeds both have), the number the interval is about.
    diff = paired.loc[method, "mean_diff"] if method in paired.index else ours["mean"] - base["mean"]
    where = "above" if diff > 0 else "below" if diff < 0 else "level with"
    sentence = (f"{method}: {ours['mean']:.2f}% against {baseline} {base['mean']:.2f}% "
                f"({int(ours['n_seeds'])} and {int(base['n_seeds'])} seed(s)): {abs(diff):.2f} points {where} {baseline}")
    if method not in paired.index or paired.loc[method, "n_pairs"] < 2:
        return sentence + ". With one seed there is no estimate of seed-to-seed noise, so this does not rank them."
    p = paired.loc[method]
    interval = (f"paired over {int(p['n_pairs'])} seeds, uncorrected 95% interval {p['ci95_low']:+.2f} to "
                f"{p['ci95_high']:+.2f} points")
    return sentence + f"; {interval}: {_reading(p)}"


def _reading(row) -> str:
    """What one uncorrected interval says, and where the corrected verdict is given: one
    verdict per comparison, 06's (Holm over its family), so no notebook contradicts another."""
    family = f"06 decides it with Holm's correction over its {len(COMPARISONS)} comparisons"
    if row["beyond_noise"]:
        return f"the interval excludes zero on its own; {family}."
    return f"the interval includes zero, so this comparison shows no difference even before a correction ({family})."


def _against_ce(records, method) -> str:
    """The method minus CE, paired by seed, with its uncorrected interval's reading (one seed:
    the verdict, which says it cannot tell)."""
    row = _pair(records, method, "ce")
    if row is None:
        return verdict(records, method)
    return f"{method} minus CE, paired by seed: {_difference(row)}, uncorrected: {_reading(row)}"


def teacher(run) -> str:
    """01: the teacher's accuracy, its best and worst classes, its calibration."""
    metrics = run.metrics
    per_class = metrics.get("per_class_accuracy", [])
    lines = [f"The teacher classifies {100 * metrics['accuracy']:.2f}% of the test images correctly."]
    if per_class:
        from .data import CIFAR10_CLASSES
        classes = CIFAR10_CLASSES if len(per_class) == len(CIFAR10_CLASSES) else [str(i) for i in range(len(per_class))]
        order = sorted(range(len(per_class)), key=per_class.__getitem__)
        lines.append(f"Its weakest class is {classes[order[0]]} ({100 * per_class[order[0]]:.1f}%), its strongest "
                     f"{classes[order[-1]]} ({100 * per_class[order[-1]]:.1f}%): the classes it confuses are where its "
                     "soft targets carry the most information (a cat that is partly a dog).")
    if "ece" in metrics:
        lines.append(f"Its expected calibration error is {metrics['ece']:.3f}: "
                     + ("its confidence tracks its accuracy closely, so its probabilities are worth imitating."
                        if metrics["ece"] < 0.05 else
                        "its confidence and accuracy part ways, which a student imitating its probabilities inherits."))
    return "\n".join(lines)


def baseline(records: list[dict]) -> str:
    """02: the CE student, the spread of its seeds and the gap a teacher could close."""
    tab = results.table(records).set_index("method")
    if "ce" not in tab.index:
        return "No CE run yet."
    ce = tab.loc["ce"]
    text = f"The student trained alone reaches {ce['mean']:.2f}%"
    text += (f" ± {ce['std']:.2f} (std over {int(ce['n_seeds'])} seeds): differences between methods smaller "
             "than a few times that spread cannot be told from seed noise." if ce["n_seeds"] > 1 else
             " (one seed: no estimate of seed noise).")
    if "teacher" in tab.index:
        gap = tab.loc["teacher", "mean"] - ce["mean"]
        family = records[-1]["config"].get("family", "tutorial")
        sizes = [count_parameters(build(a)) for a in (teacher_architecture(family), student_architecture(family))]
        text += (f"\nThe teacher is {gap:.2f} points more accurate: that gap is what distillation can try to close; "
                 f"the student has {sizes[0] / sizes[1]:.1f}× fewer parameters, so it cannot be expected to close all of it.")
    return text


def distillation(records: list[dict]) -> str:
    """03: KD against CE and against the two controls, and a reading of why."""
    tab = results.table(records).set_index("method")
    kd_ce = _pair(records, "kd", "ce")
    if kd_ce is None:
        return verdict(records, "kd")
    lines = [f"KD minus CE, paired by seed: {_difference(kd_ce)}."]
    controls = {c: _pair(records, "kd", c) for c in ("kd_untrained", "ls")}
    for control, row in controls.items():
        if row is not None:
            lines.append(f"KD minus {control}: {_difference(row)}.")
    gain = kd_ce["ci95_low"] > 0
    beats_controls = all(row is not None and row["ci95_low"] > 0 for row in controls.values())
    corrected = f"(uncorrected intervals; 06 gives the verdict with Holm's correction over its {len(COMPARISONS)} comparisons)"
    if gain and beats_controls:
        lines.append("KD's intervals against CE and against both controls all lie above zero: soft targets from an "
                     "untrained teacher and smoothed labels do not give its gain, which points to what the trained "
                     f"teacher knows {corrected}.")
    elif gain:
        lines.append("KD's interval against CE lies above zero, but not its intervals against both controls: part of "
                     f"the gain may be the regularization any soft target gives, not the teacher's knowledge {corrected}.")
    else:
        lines.append(f"KD's interval against CE includes zero: no gain is shown here, even before a correction {corrected}.")
    if "teacher" in tab.index and "kd" in tab.index and "ce" in tab.index:
        agree = tab.loc[["ce", "kd"], "teacher_agreement"]
        lines.append(f"The KD student agrees with the teacher on {agree['kd']:.1f}% of the test images, the CE "
                     f"student on {agree['ce']:.1f}%: "
                     + ("KD made the student predict more like its teacher." if agree["kd"] > agree["ce"] else
                        "KD did not make the student predict more like its teacher."))
    return "\n".join(lines)


def attention(records: list[dict], method: str) -> str:
    """04, 05: the attention method against CE and KD, and whether its maps moved towards the
    teacher's beyond what plain KD moves them."""
    lines = [_against_ce(records, method)]
    similarity = results.map_similarity(records).set_index("method")
    kind = results.MATCHED_MAPS.get(method)
    if kind and method in similarity.index:
        columns = [c for c in similarity.columns if c.startswith(kind)]
        own = similarity.loc[method, columns]
        for other in ("ce", "kd"):
            if other in similarity.index:
                theirs = similarity.loc[other, columns]
                closer = bool((own > theirs).all())
                lines.append(f"Its {kind} maps' cosine similarity to the teacher's (stages {' / '.join(c.split()[1] for c in columns)}): "
                             f"{' / '.join(f'{v:.3f}' for v in own)}, against {' / '.join(f'{v:.3f}' for v in theirs)} "
                             f"for the {other.upper()} student: " + ("closer at every stage." if closer else "not closer at every stage."))
    return "\n".join(lines)


def features(records: list[dict], methods=("cosine", "regressor")) -> str:
    """05: each of the tutorial's feature methods against CE, paired by seed, beside what the
    tutorial's own one-run page showed for it (its method minus its CE student)."""
    lines = []
    for method in methods:
        text = _against_ce(records, method)
        anchor = results.TUTORIAL.get(method)
        if anchor is not None:
            text += (f" The tutorial's page: {anchor:.2f}% against its CE student's {results.TUTORIAL['ce']:.2f}% "
                     f"({anchor - results.TUTORIAL['ce']:+.2f}, one run each: no estimate of its noise).")
        lines.append(text)
    return "\n".join(lines)


def _p(value: float) -> str:
    text = results.p_text(value)
    return text if text.startswith("<") else f"= {text}"


def overall(records: list[dict]) -> str:
    """06: which of the comparisons survive Holm's correction, in words."""
    table = comparisons(records)
    if table.empty or (table["n_pairs"] < 2).all():
        return "With one seed there is no estimate of seed noise: nothing can be said to survive a correction."
    survive = table[table["holm"]]
    lines = [f"{len(table)} comparisons at once: with Holm's correction, {len(survive)} of them hold at the 5% level."]
    for row in table.itertuples():
        lines.append(f"- {row.method} − {row.baseline}: {row.mean_diff:+.2f} points, p {_p(row.p_value)}, "
                     f"Holm-adjusted p {_p(row.p_holm)}: " + ("holds." if row.holm else "does not hold."))
    if len(table) and table["n_pairs"].max() <= 3:
        n = int(table["n_pairs"].max())
        lines.append(f"With {n} seeds a paired t-test has {n - 1} degree{'s' if n > 2 else ''} of freedom: only a "
                     "consistent difference, large against its spread, survives; more seeds would make smaller gains visible.")
    return "\n".join(lines)


def sweep(runs: pd.DataFrame, parameter: str, ce_baseline: float | None = None) -> str:
    """07: the value validation chooses, its validation and test accuracy, and how far the
    other values are from it against the seed spread. Without a validation split (`val_accuracy`
    all NaN: a profile that trains on every image) nothing is chosen: the test accuracies are
    reported, with the same reading of their span. ce_baseline: CE at the same seeds, on the
    same split as the sweep's curve."""
    from .experiment import best
    validation = not runs["val_accuracy"].isna().all()
    column, split = ("val_accuracy", "validation") if validation else ("accuracy", "test")
    means = runs.groupby(parameter)[["val_accuracy", "accuracy"]].mean()
    spread = runs.groupby(parameter)[column].std(ddof=1).mean()
    seeds = runs.groupby(parameter)["seed"].nunique().min()
    noise = spread * (2 / seeds) ** 0.5  # std of the difference of two values' means over `seeds` seeds
    span = means[column].max() - means[column].min()
    if validation:
        chosen = best(runs, parameter)
        text = (f"{parameter}: validation chooses {chosen:g} ({means.loc[chosen, 'val_accuracy']:.2f}% on validation, "
                f"{means.loc[chosen, 'accuracy']:.2f}% on the test set, which chose nothing). ")
    else:
        text = (f"{parameter}: no validation split in this profile, so nothing is chosen (the test set must not "
                "choose); test accuracy by value: "
                + ", ".join(f"{v:g}: {a:.2f}%" for v, a in means["accuracy"].items()) + ". ")
    if seeds < 2:
        text += f"The values tried span {span:.2f} points on {split}; with one seed a value, seed noise is unknown."
    else:
        text += (f"The values tried span {span:.2f} points on {split}; seed noise alone moves the difference of two "
                 f"values' means by about {noise:.2f} (std, {seeds} seeds a value)")
        text += (": more than three times that, so the knob matters here." if span > 3 * noise else
                 ": within about three times that, so this sweep does not rank the values firmly.")
    if ce_baseline is not None:
        text += f" CE at the same seeds and schedule: {ce_baseline:.2f}% on {split}."
    return text
