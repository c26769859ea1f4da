"""What a run shows, in sentences computed from its records: each notebook ends with one of
these, so that no sentence about a result can go stale when the numbers change.

    comparisons(records)        -> the comparisons of 06 (COMPARISONS), with Holm's correction
    teacher(run)                 -> 01: how good the teacher is, and where it fails
    baseline(records)            -> 02: the CE student, its seed spread, its gap to the teacher
    distillation(records)        -> 03: KD against CE and against each control, and why
    teacher_data(records)        -> 03, 06: KD's gain split: a teacher of the students' images, and its extra data
    attention(records, method)   -> 04, 05: the method against CE; did its maps move?
    map_transfer(records, method)-> 04-06: did its maps move towards the teacher's, beyond CE's and KD's?
    features(records)            -> 05: the tutorial's feature methods against CE, and against its own runs
    overall(records)             -> 06: what survives the correction, in one paragraph
    sweep(runs, parameter, ...)  -> 07: the value validation chooses, and the spread around it
    same_as_ce(at_zero, ce_runs) -> 07: does the attention weight 0 give CE's run, seed by seed?
    one_seed(records)            -> 06: what each seed alone would have said (one_seed_reading: in words)
    consistency(records, ...)    -> 08: each step of the way of teaching, with 08's Holm family
    patience(short, long, ...)   -> 08: a method's gain at the series' schedule and at the longer one
    fidelity(records, lesson)    -> 08, 09: how closely each student matches its teacher
    teachers(records, accuracy)  -> 09: each teacher's students against CE, by the teacher's accuracy
    against_reference(records)   -> the reference table, row by row, inside our mean ± 2 std or not
"""

from __future__ import annotations

import pandas as pd

from . import results
from .methods import DECLARED, METHODS, controls, rows
from .models import build, count_parameters, student_architecture, teacher_architecture

# 06's family of comparisons: every method that distils against CE, KD against each control, and
# KD from the small teacher against CE (the first part of KD's gain, `teacher_data`).
COMPARISONS = [*((m.name, "ce") for m in METHODS.values() if m.needs and not m.control),
               *(("kd", control) for control in controls("kd")), ("kd_small_teacher", "ce")]


def comparisons(records: list[dict], pairs=COMPARISONS) -> pd.DataFrame:
    """The paired differences of `pairs`, with Holm's correction for making them all."""
    return results.comparisons(records, pairs)


def _difference(row) -> str:
    if row["n_pairs"] < 2:
        return f"{row['mean_diff']:+.2f} points (one seed: no interval)"
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
    if row["excludes_zero"]:
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
        confusion = metrics.get("confusion")
        if confusion:
            rate = [[n / max(sum(row), 1) for n in row] for row in confusion]  # of class i's images, the share called j
            i, j = max(((i, j) for i in range(len(rate)) for j in range(i + 1, len(rate))),
                       key=lambda pair: rate[pair[0]][pair[1]] + rate[pair[1]][pair[0]])
            lines.append(f"The pair it confuses most: {classes[i]} and {classes[j]} ({100 * rate[i][j]:.1f}% of the "
                         f"{classes[i]} images called {classes[j]}, {100 * rate[j][i]:.1f}% the other way).")
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
    text += (f" ± {ce['std']:.2f} (std over {int(ce['n_seeds'])} seeds): differences between methods of the order "
             "of that spread cannot be told from seed noise; the notebooks that follow pair each method with CE seed "
             "by seed, and 06 decides with Holm's correction over all its comparisons." if ce["n_seeds"] > 1 else
             " (one seed: no estimate of seed noise).")
    if "teacher" in tab.index:
        gap = tab.loc["teacher", "mean"] - ce["mean"]
        family = records[-1]["config"].get("family", "tutorial")
        sizes = [count_parameters(build(a)) for a in (teacher_architecture(family), student_architecture(family))]
        text += (f"\nThe teacher is {gap:.2f} points more accurate: that gap is what distillation can try to close; "
                 f"the student has {sizes[0] / sizes[1]:.1f}× fewer parameters, so it cannot be expected to close all of it.")
    return text


def distillation(records: list[dict]) -> str:
    """03: KD against CE and against each control, and a reading of why."""
    tab = results.table(records).set_index("method")
    kd_ce = _pair(records, "kd", "ce")
    if kd_ce is None:
        return verdict(records, "kd")
    lines = [f"KD minus CE, paired by seed: {_difference(kd_ce)}."]
    # The controls that ask whether the gain is the teacher's knowledge (the small teacher asks
    # another question: how much is its extra data, `teacher_data`).
    against = {c: _pair(records, "kd", c) for c in ("kd_untrained", "ls")}
    for control, row in against.items():
        if row is not None:
            lines.append(f"KD minus {control}: {_difference(row)}.")
    gain = kd_ce["ci95_low"] > 0
    beats_controls = all(row is not None and row["ci95_low"] > 0 for row in against.values())
    corrected = f"(uncorrected intervals; 06 gives the verdict with Holm's correction over its {len(COMPARISONS)} comparisons)"
    family = _holm_verdicts(records)
    held = [f"KD − {'CE' if b == 'ce' else b}" for b in ("ce", *against) if family.get(("kd", b), False)]
    giving = {"kd_untrained": "an untrained teacher's soft targets", "ls": "smoothed labels"}
    unshown = [giving[c] for c in against if not family.get(("kd", c), False)]
    if gain and beats_controls and len(held) == 1 + len(against):
        lines.append("KD's intervals against CE and against these two controls all lie above zero, and all hold after "
                     "Holm's correction: KD gives more than soft targets from an untrained teacher or smoothed labels "
                     "give (the controls may gain over CE themselves: 06 shows it), and that excess points to what the "
                     "trained teacher knows.")
    elif gain and beats_controls:
        provisional = len(family) < len(COMPARISONS)  # 06's larger family can take a verdict back
        which_hold = (f"of these three only {', '.join(held)} hold{'s' if len(held) == 1 else ''}" if held else
                      "none of these three holds") + \
            (" for now" if provisional else "")
        lines.append(f"KD's intervals against CE and against these two controls all lie above zero uncorrected, but after "
                     f"Holm's correction over the {len(family)} comparisons with runs so far, {which_hold}: "
                     f"that KD gives more than {' or '.join(unshown) or 'CE'} is not established here (06 gives the "
                     f"verdicts over all {len(COMPARISONS)} of its comparisons"
                     + (", where fewer may hold)." if provisional else ")."))
    elif gain:
        lines.append("KD's interval against CE lies above zero, but not its intervals against both of these controls: "
                     "part of the gain may be the regularization any soft target gives, not the teacher's knowledge "
                     f"{corrected}.")
    else:
        lines.append(f"KD's interval against CE includes zero: no gain is shown here, even before a correction {corrected}.")
    agree = tab.reindex(["ce", "kd"])["teacher_agreement"] if "teacher" in tab.index else pd.Series(dtype=float)
    if len(agree) and agree.notna().all():  # records of older code may not carry it
        found = results.comparisons(records, [("kd", "ce")], correct=False, measure="teacher_agreement")
        closer = found.iloc[0] if len(found) else None
        said = f"The KD student agrees with the teacher on {agree['kd']:.1f}% of the test images, the CE student on " \
               f"{agree['ce']:.1f}%"
        if closer is None or closer["n_pairs"] < 2:
            lines.append(f"{said}; measured at fewer than two seeds of both, so whether KD made the student predict "
                         "more like its teacher is not shown.")
        else:
            apart = bool(closer["excludes_zero"])  # the interval, uncorrected
            lines.append(f"{said}: KD minus CE {_difference(closer)}: " + (
                f"KD made the student predict {'more' if closer['ci95_low'] > 0 else 'less'} like its teacher "
                "(uncorrected: a reading of how, not one of 06's comparisons)." if apart else
                "within seed noise, so these seeds do not show that KD made the student predict more like its teacher."))
    return "\n".join(lines)


def teacher_data(records: list[dict]) -> str:
    """03, 06: KD's gain over CE in two parts, each paired by seed: what KD from a teacher
    trained on the course's 5,000 images gives (in the course, the students' own images), and
    what KD's larger teacher adds to that (its other images, and the accuracy they bought)."""
    whole, small, added = (_pair(records, *pair) for pair in
                           (("kd", "ce"), ("kd_small_teacher", "ce"), ("kd", "kd_small_teacher")))
    if whole is None or small is None or added is None:
        return ("No comparable runs of KD, CE and KD from the small teacher (kd_small_teacher) with two seeds or "
                "more yet: KD's gain cannot be split.")
    kd, other = (next(r for r in reversed(results.comparable(records, warn=False)) if r["method"] == m)
                 for m in ("kd", "kd_small_teacher"))
    family = _holm_verdicts(records)
    same = bool(other.get("teacher_saw_students_images"))
    own = "exactly the students' images" if same else "not exactly the students' images"
    them = "a teacher of these images" if same else "a teacher of fewer images"
    extra = "images the students never saw" if same else "its other images"

    def part(row, pair, gain: str, nothing: str, loss: str) -> str:
        """A part's verdict: a gain only where its interval excludes zero and Holm holds."""
        if row["ci95_low"] > 0:
            return (f"{gain} (holds after Holm)." if family.get(pair, False) else
                    "the interval excludes zero uncorrected, but it does not hold after Holm's correction: "
                    "not shown beyond seed noise.")
        return loss if row["ci95_high"] < 0 else nothing

    lines = [f"The students learn from {kd['n_train']:,} images. KD's teacher trained on {_seen(kd)}; the small "
             f"teacher on {_seen(other)} ({own})." if other.get("teacher_images") else
             f"The students learn from {kd['n_train']:,} images.",
             f"KD minus CE: {_difference(whole)}. It splits in two:",
             f"- KD from the small teacher minus CE: {_difference(small)}: "
             + part(small, ("kd_small_teacher", "ce"), f"distillation pays with {them} alone",
                    f"with {them} alone, no gain is shown.", f"{them} alone makes the student worse."),
             f"- KD minus KD from the small teacher: {_difference(added)}: "
             + part(added, ("kd", "kd_small_teacher"),
                    f"on top of the small teacher's part, the larger teacher adds this: what it learnt from {extra} "
                    "and the accuracy that bought",
                    "the larger teacher adds nothing that seeds can tell apart.",
                    "the larger teacher makes the student worse than the small one does."),
             "The two teachers differ in their images and in their accuracy, so the second part is not the images' "
             "alone (09 changes the teacher's accuracy with its images held fixed)."]
    lines.append(f"Intervals uncorrected; the verdicts use Holm's correction over 06's {len(COMPARISONS)} comparisons."
                 if len(family) == len(COMPARISONS) else
                 f"Intervals uncorrected; the verdicts use Holm's correction over the {len(family)} of 06's "
                 f"{len(COMPARISONS)} comparisons that have runs so far (06 gives them over all {len(COMPARISONS)}).")
    return "\n".join(lines)


def _seen(record: dict) -> str:
    """A student record's teacher: how many images it trained on, and its test accuracy."""
    accuracy = record.get("teacher_accuracy")
    return f"{record.get('teacher_images', 0):,} images" + (
        f" and reaches {100 * accuracy:.2f}% on the test images" if accuracy is not None else "")


def attention(records: list[dict], method: str) -> str:
    """04, 05: the attention method against CE, then `map_transfer`."""
    return "\n".join(filter(None, [_against_ce(records, method), map_transfer(records, method)]))


def map_transfer(records: list[dict], method: str) -> str:
    """04-06: whether the method's maps moved towards the teacher's beyond the CE student's and
    the KD student's: per stage, paired by seed, with its uncorrected interval ("" if none)."""
    lines = []
    kind = results.MATCHED_MAPS.get(method)
    runs = results.map_similarity(records, by_seed=True)
    if not kind or method not in set(runs["method"]):
        return ""
    columns = [c for c in runs.columns if c.startswith(kind)]
    by_seed = runs.pivot_table(index="seed", columns="method", values=columns)
    stages = [c.split()[1] for c in columns]
    for other in ("ce", "kd"):
        if other not in set(runs["method"]):
            continue
        found = [results.interval(by_seed[(c, method)] - by_seed[(c, other)]) for c in columns]
        mean = lambda m: " / ".join(f"{by_seed[(c, m)].mean():.3f}" for c in columns)
        said = (f"Its {kind} maps' cosine similarity to the teacher's (stages {' / '.join(stages)}): {mean(method)}, "
                f"against {mean(other)} for the {other.upper()} student")
        if any(f["n_pairs"] < 2 for f in found):
            lines.append(f"{said}; fewer than two seeds of both, so whether its maps are closer is not shown.")
            continue
        closer = [s for s, f in zip(stages, found) if f["ci95_low"] > 0]
        farther = [s for s, f in zip(stages, found) if f["ci95_high"] < 0]
        if len(closer) == len(stages):
            reading = "closer at every stage"
        elif closer or farther:
            reading = "; ".join(f"{word} at stage {' and '.join(which)}" for word, which in
                                (("closer", closer), ("farther", farther)) if which) + \
                (", and no other stage differs beyond seed noise" if len(closer) + len(farther) < len(stages) else "")
        else:
            reading = "no stage differs beyond seed noise"
        differences = " / ".join(f"{f['mean_diff']:+.3f} [{f['ci95_low']:+.3f}, {f['ci95_high']:+.3f}]" for f in found)
        lines.append(f"{said}. Paired by seed ({found[0]['n_pairs']} seeds, uncorrected 95% intervals): "
                     f"{differences}: {reading}.")
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
    lines.extend(_against_controls(table))
    if len(table) and table["n_pairs"].max() <= 3:
        n = int(table["n_pairs"].max())
        lines.append(f"With {n} seeds a paired t-test has {n - 1} degree{'s' if n > 2 else ''} of freedom: only a "
                     "consistent difference, large against its spread, survives; more seeds would make smaller gains visible.")
    return "\n".join(lines)


def _against_controls(table: pd.DataFrame) -> list[str]:
    """06: whether KD's gain over CE is shown to be the teacher's knowledge: it is only where KD
    also leads each control (a gain a control gives too is not the teacher's) after Holm."""
    verdicts = table.set_index(["method", "baseline"])["holm"]
    if ("kd", "ce") not in verdicts.index:
        return []
    held = [c for c in controls("kd") if verdicts.get(("kd", c), False)]
    unshown = [c for c in controls("kd") if ("kd", c) in verdicts.index and c not in held]
    if not verdicts[("kd", "ce")]:
        return ["KD's gain over CE does not hold, so no gain here can be credited to the teacher"
                + (f" (KD does lead {', '.join(held)} after Holm)." if held else ".")]
    if not unshown:
        return [f"KD's gain over CE holds, and KD leads each of its controls ({', '.join(held)}) after Holm: the gain "
                "is more than any of them gives."] if held else []
    return [f"KD's gain over CE holds, but its lead over {' and '.join(unshown)} does not hold after Holm: this run "
            f"does not show that KD gives more than {'this control gives' if len(unshown) == 1 else 'these controls give'}, "
            "so part of its gain may not be the teacher's knowledge"
            + (f" (its lead over {', '.join(held)} holds)." if held else ".")]


def sweep(runs: pd.DataFrame, parameter: str, ce_baseline: float | None = None) -> str:
    """07: the value validation chooses, its validation and test accuracy, and each other value
    against it, paired by seed (the sweep's values share their seeds), with its uncorrected 95%
    interval; a value is ranked below the chosen one only where Holm's correction over the sweep's
    comparisons holds. Without a validation split (`val_accuracy` all NaN: a profile that trains on every
    image) nothing is chosen: the test accuracies are reported, and each value is read against the
    one highest on test. ce_baseline: CE at the same seeds, on the same split as the sweep's curve."""
    from .experiment import best
    validation = not runs["val_accuracy"].isna().all()
    column, split = ("val_accuracy", "validation") if validation else ("accuracy", "test")
    means = runs.groupby(parameter)[["val_accuracy", "accuracy"]].mean()
    seeds = runs.groupby(parameter)["seed"].nunique().min()
    span = means[column].max() - means[column].min()
    if validation:
        anchor = best(runs, parameter)
        text = (f"{parameter}: validation chooses {anchor:g} ({means.loc[anchor, 'val_accuracy']:.2f}% on validation, "
                f"{means.loc[anchor, 'accuracy']:.2f}% on the test set, which chose nothing). ")
    else:
        anchor = means["accuracy"].idxmax()
        text = (f"{parameter}: no validation split in this profile, so nothing is chosen (the test set must not "
                "choose); test accuracy by value: "
                + ", ".join(f"{v:g}: {a:.2f}%" for v, a in means["accuracy"].items()) + ". ")
    text += f"The values tried span {span:.2f} points on {split}"
    if seeds < 2:
        text += "; with one seed a value, seed noise is unknown."
    else:
        by_seed = runs.pivot_table(index="seed", columns=parameter, values=column)
        against = {value: results.interval(by_seed[value] - by_seed[anchor])
                   for value in by_seed.columns if value != anchor}
        text += (f". Each other value minus {anchor:g}, paired by seed ({seeds} seeds a value; uncorrected 95% "
                 "intervals): " + ", ".join(f"{value:g}: {row['mean_diff']:+.2f} [{row['ci95_low']:+.2f}, "
                                            f"{row['ci95_high']:+.2f}]" for value, row in against.items()) + ". ")
        # Holm over this sweep's own comparisons: a value is ranked below only where the correction holds.
        adjusted = dict(zip(against, results.holm([row["p_value"] for row in against.values()])))
        lower = {value: row["mean_diff"] < 0 and adjusted[value] < 0.05 for value, row in against.items()}
        below = [f"{value:g}" for value, is_lower in lower.items() if is_lower]
        unranked = [f"{value:g}" for value, is_lower in lower.items() if not is_lower]
        family = f"Holm over this sweep's {len(against)} comparison{'s' if len(against) > 1 else ''}"
        if not unranked:
            text += f"Every other value lies below it, holding after {family}: the knob matters here."
        elif not below:
            text += (f"None lies below it after {family}: with {seeds} seeds a value this sweep does not rank the "
                     "values firmly.")
        else:
            text += (f"{', '.join(below)} lie{'s' if len(below) == 1 else ''} below it, holding after {family}; "
                     f"{', '.join(unranked)} cannot be told from it with {seeds} seeds a value.")
    if ce_baseline is not None:
        text += f" CE at the same seeds and schedule: {ce_baseline:.2f}% on {split}."
    return text


def same_as_ce(at_zero: pd.DataFrame, ce_runs, split: str) -> str:
    """07: a sweep point that is CE by construction (beta = 0) against CE's own runs, seed by seed.

    On a CPU the engine repeats a run bit for bit at the same thread count, so there equal
    settings must give the same accuracy, and a gap is a bug. Elsewhere the check cannot be
    made: seeds trained side by side run one thread each and a lone sweep point every thread,
    and another thread count (or a GPU's kernels) adds the same numbers in another order, so the
    two runs part in their last bits at the first step and train apart from there."""
    column = "val_accuracy" if split == "validation" else "accuracy"
    zero = at_zero.drop_duplicates("seed", keep="last").set_index("seed")
    lines = []
    for ce in sorted(ce_runs, key=lambda run: run.config.seed):
        seed, accuracy = ce.config.seed, 100 * ce.metrics[column]
        if seed not in zero.index:
            lines.append(f"seed {seed}: no beta = 0 run at this seed to hold against CE's")
            continue
        ours, device = zero.loc[seed, column], zero.loc[seed, "device"]
        device = device if isinstance(device, str) else ""  # a frame without it, or NaN: not recorded
        gap = ours - accuracy
        line = f"seed {seed}: beta = 0 gives {ours:.2f}% on {split}, CE gave {accuracy:.2f}%: "
        if abs(gap) < 1e-9:
            line += "the same, as it must be"
        elif not device or not ce.device:
            line += f"{gap:+.2f} points apart; where a run ran is not recorded, so this cannot be checked"
        elif device == ce.device and device.startswith("CPU"):
            line += (f"{gap:+.2f} points apart on the same recorded CPU and thread count, where the engine repeats a "
                     "run bit for bit: the sweep changed more than the knob, or the runs ran on different CPU models "
                     "or resumed at another thread count (records name neither); please report it")
        else:
            why = ("another thread count adds the same numbers in another order"
                   if device.startswith("CPU") and ce.device.startswith("CPU")
                   else "a GPU's kernels, or another device's, do not repeat a CPU's sums bit for bit")
            line += (f"{gap:+.2f} points apart, which this check cannot judge: CE ran on {ce.device}, this run on "
                     f"{device}, and {why}, so these are two draws of one recipe (as far apart as two seeds "
                     "can be), not one run twice")
        lines.append(line)
    return "\n".join(lines)


# ------------------------------------------------------------------ 06: what one seed says

# The tutorial's page, two of its builds (teacher / CE / KD, one run each): its KD-vs-CE order flips.
TUTORIAL_BUILDS = {"PyTorch 2.0 build": (75.10, 69.86, 70.80), "a later build of the page": (75.60, 70.41, 70.19)}


def one_seed(records: list[dict], pairs=None) -> pd.DataFrame:
    """For each comparison with CE: the difference each single seed shows, how many seeds
    alone would have called the method better (or worse), and the paired verdict over all seeds
    with Holm's correction over 06's family."""
    pairs = pairs or [(m, b) for m, b in COMPARISONS if b == "ce"]
    runs = results.frame(records).pivot_table(index="seed", columns="method", values="accuracy")
    family = comparisons(records).set_index(["method", "baseline"])
    table = []
    for method, baseline in pairs:
        if method not in runs or baseline not in runs or (method, baseline) not in family.index:
            continue
        diff = (runs[method] - runs[baseline]).dropna()
        verdict_row = family.loc[(method, baseline)]
        table.append({"comparison": f"{method} − {baseline}", **{f"seed {s}": d for s, d in diff.items()},
                     "seeds above": int((diff > 0).sum()), "seeds below": int((diff < 0).sum()),
                     "paired mean": verdict_row["mean_diff"], "holds after Holm": bool(verdict_row["holm"])})
    return pd.DataFrame(table)


def one_seed_reading(table: pd.DataFrame) -> str:
    """What `one_seed`'s table says in words: where single seeds disagree with each other, and
    how often a one-run table would have told another story than the paired verdict."""
    (a, b), names = TUTORIAL_BUILDS.values(), list(TUTORIAL_BUILDS)
    tutorial = (f"The tutorial's own page shows the same thing: KD minus CE is {a[2] - a[1]:+.2f} points in its "
                f"{names[0]} and {b[2] - b[1]:+.2f} in {names[1]} (one run each): the order flips with the draw.")
    seeds = [c for c in table.columns if c.startswith("seed ")]
    if table.empty or len(seeds) < 2:
        return "With one seed this is a one-run table itself: run three seeds to see how it moves. " + tutorial
    split = table[(table["seeds above"] > 0) & (table["seeds below"] > 0)]
    misleading = table[~table["holds after Holm"] & ((table["seeds above"] == 0) | (table["seeds below"] == 0))]
    lines = [f"{len(split)} of {len(table)} comparisons change sign from one seed to another"
             + (f" ({', '.join(split['comparison'])}): a one-run table would have ranked those methods by the luck "
                "of its seed." if len(split) else ".")]
    if len(misleading):
        lines.append(f"{len(misleading)} comparison(s) point the same way at every one of the {len(seeds)} seeds and "
                     f"still do not hold after Holm ({', '.join(misleading['comparison'])}): agreement of a few seeds "
                     "is weaker evidence than it looks.")
    lines.append(tutorial)
    return "\n".join(lines)


# ----------------------------------------------------------- 08: consistent and patient teaching

# 08's family, one step at a time: consistency (the teacher's outputs on the student's view, not
# the plain image), more views, mixup on top of them, each teaching against its own inputs
# without a teacher, and the inconsistent student against CE.
CONSISTENCY = [("kd", "kd_plain"), ("kd_fresh", "kd"), ("kd_mixup", "kd_fresh"), ("kd_fresh", "ce_fresh"),
               ("kd_mixup", "ce_mixup"), ("kd_plain", "ce")]
# and patience: the fresh-view student against its own inputs without a teacher, again at the
# longer schedule (its rows named with their epochs, so they never pair with the short ones).
PATIENCE = ("kd_fresh", "ce_fresh")


def _epochs_of(records: list[dict], method: str) -> int:
    """The schedule of `method`'s records that a table compares (the newest comparable run)."""
    return next(r["config"]["epochs"] for r in reversed(results.comparable(records, warn=False)) if r["method"] == method)


def consistency_comparisons(records: list[dict], patient: list[dict] = ()) -> pd.DataFrame:
    """08's family, paired by seed: CONSISTENCY on the series' schedule and, given the records
    of the longer one (`patient`), PATIENCE there; Holm's correction over all of them."""
    table = results.comparisons(records, CONSISTENCY, correct=False)
    long = results.comparisons(list(patient), [PATIENCE], correct=False)
    if not long.empty:
        at = f" ({_epochs_of(list(patient), PATIENCE[0])} epochs)"
        long[["method", "baseline"]] = long[["method", "baseline"]] + at
        table = pd.concat([table, long], ignore_index=True)
    table["p_holm"] = results.holm(table["p_value"].tolist())
    table["holm"] = table["p_holm"] < 0.05
    return table


def _holds(row, family: str = "") -> str:
    """A Holm verdict in words that say which way the difference goes (and in which family)."""
    said = "holds after Holm: " + ("a gain" if row.mean_diff > 0 else "a loss") if row.holm else "does not hold after Holm"
    return said + (f" (in {family}'s family)." if family else ".")


def consistency(records: list[dict], patient: list[dict] = ()) -> str:
    """08: each step of the way of teaching (and patience, given the longer schedule's records),
    paired by seed, with its uncorrected interval and the Holm verdict over 08's family."""
    table = consistency_comparisons(records, patient)
    if table.empty or (table["n_pairs"] < 2).all():
        return "With fewer than two seeds per way of teaching there is no estimate of seed noise: nothing is ranked."
    lines = [f"{len(table)} comparisons, paired by seed (uncorrected 95% intervals; the verdict with Holm's "
             "correction over all of them):"]
    for row in table.itertuples():
        lines.append(f"- {row.method} − {row.baseline}: {row.mean_diff:+.2f} points [{row.ci95_low:+.2f}, "
                     f"{row.ci95_high:+.2f}], Holm-adjusted p {_p(row.p_holm)}: {_holds(row)}")
    held = table[table["holm"]]
    listed = lambda rows: ", ".join(f"{r.method} − {r.baseline}" for r in rows.itertuples())
    parts = [f"{what} {listed(rows)}" for what, rows in (("gains that hold:", held[held["mean_diff"] > 0]),
                                                         ("losses that hold:", held[held["mean_diff"] < 0])) if len(rows)]
    rest = len(table) - len(held)
    lines.append("In sum, " + ("; ".join(parts) if parts else "no step holds after Holm")
                 + (f"; the other {rest} cannot be told from seed noise." if rest else "."))
    return "\n".join(lines)


def fidelity(records: list[dict], lesson: str) -> str:
    """08, 09: how closely each student matches its teacher on training and on test images, and
    where it stops matching (the gap between the two)."""
    table = results.fidelity(records, lesson).set_index("method")
    untaught = [m for m in table.index if m in DECLARED and not DECLARED[m].needs]  # no teacher: the controls
    labels_only, table = table.loc[untaught], table.drop(index=untaught)
    if table.empty:
        return "No run with a fidelity measurement yet."
    lines = []
    for method, row in table.iterrows():
        lines.append(f"- {method}: agrees with its teacher on {row['train agreement']:.1f}% of the training images and "
                     f"{row['test agreement']:.1f}% of the test images (KL {row['train KL']:.3f} and {row['test KL']:.3f}).")
    gap = table["train agreement"] - table["test agreement"]
    lines.append(f"Every distilled student matches its teacher less on images it never trained on: the gap runs from "
                 f"{gap.min():.1f} points ({gap.idxmin()}) to {gap.max():.1f} ({gap.idxmax()})." if (gap > 0).all() else
                 f"Agreement on test minus agreement on training images runs from {-gap.max():+.1f} to {-gap.min():+.1f} points.")
    lines.append(_closest(records, lesson, table["test agreement"]))
    taught_by = {r.get("teacher") for r in results.comparable(results.of_lesson(records, lesson), warn=False)
                 if r["method"] in table.index}
    if not labels_only.empty and len(taught_by) == 1:  # one teacher: the agreements compare like with like
        span = lambda column: f"{column.min():.1f}-{column.max():.1f}%" if len(column) > 1 else f"{column.iloc[0]:.1f}%"
        lines.append(f"Trained from labels alone, {', '.join(labels_only.index)} agree{'s' if len(labels_only) == 1 else ''} with the teacher on "
                     f"{span(labels_only['train agreement'])} of the training images and "
                     f"{span(labels_only['test agreement'])} of the test images; the distilled students with their own teacher on "
                     f"{span(table['train agreement'])} and {span(table['test agreement'])}.")
    return "\n".join(lines)


def _closest(records: list[dict], lesson: str, agreement: pd.Series) -> str:
    """The taught student that agrees most with its teacher on test images, and whether seeds
    tell it from the next one (their agreements paired by seed, uncorrected)."""
    ranked = agreement.sort_values(ascending=False)
    first = ranked.index[0]
    said = f"The student closest to its teacher on test images is {first} ({ranked.iloc[0]:.1f}%)"
    if len(ranked) == 1:
        return said + "."
    second = ranked.index[1]
    runs = results.fidelity(records, lesson, by_seed=True).pivot_table(index="seed", columns="method",
                                                                       values="test agreement")
    found = results.interval(runs[first] - runs[second])
    if found["n_pairs"] < 2:
        return f"{said}, then {second} ({ranked.iloc[1]:.1f}%): fewer than two seeds of both, so no order is shown."
    return (f"{said}, then {second} ({ranked.iloc[1]:.1f}%): {first} minus {second} {_difference(found)}, "
            + ("closer beyond seed noise (uncorrected)." if found["ci95_low"] > 0 else
               "within seed noise: these seeds do not tell which is closer."))


def patience(short: list[dict], long: list[dict], method: str, baseline: str = "ce") -> str:
    """08: `method`'s gain over `baseline` at the series' schedule (`short`'s records) and at the
    longer one (`long`'s), each paired by seed, and the change between them (paired by seed too)."""
    a = results.frame(short, lesson=None).pivot_table(index="seed", columns="method", values="accuracy")
    b = results.frame(long, lesson=None).pivot_table(index="seed", columns="method", values="accuracy")
    if any(m not in t for t in (a, b) for m in (method, baseline)):
        return f"No runs of {method} and {baseline} at both schedules yet."
    epochs = [_epochs_of(rs, method) for rs in (short, long)]
    before, after = (results.interval(t[method] - t[baseline]) for t in (a, b))
    change = results.interval((b[method] - b[baseline]) - (a[method] - a[baseline]))
    text = (f"{method} minus {baseline}: {_difference(before)} at {epochs[0]} epochs; {_difference(after)} at "
            f"{epochs[1]} epochs. "
            f"The change in the gain: {_difference(change)}: ")
    if change["n_pairs"] < 2:
        return text + "one seed cannot tell."
    return text + (f"the longer schedule widens {method}'s lead (uncorrected interval)." if change["ci95_low"] > 0 else
                   "the longer schedule narrows it (uncorrected interval)." if change["ci95_high"] < 0 else
                   "no change that seeds can tell apart.")


# ------------------------------------------------------------------------- 09: which teacher

def teachers(records: list[dict], accuracy: dict[str, float]) -> tuple[pd.DataFrame, str]:
    """09: each student's gain over CE against its teacher's test accuracy (`accuracy`, % by
    method) and its agreement with that teacher, and in words what the order says. One verdict
    per comparison: a student minus CE that 06 already makes (KD, the small teacher) carries 06's
    verdict; every other (the snapshots, the untrained teacher) gets Holm's correction over 09's
    family."""
    names = [m for m in rows("teachers") if m != "ce" and m in accuracy]
    own = [m for m in names if (m, "ce") not in COMPARISONS]
    table = results.comparisons(records, [(m, "ce") for m in own])
    shared = comparisons(records).set_index(["method", "baseline"])
    for m in names:
        if m not in own and (m, "ce") in shared.index:
            table = pd.concat([table, shared.loc[[(m, "ce")]].reset_index()], ignore_index=True)
    table["verdict from"] = ["09" if m in own else "06" for m in table["method"]]
    fidelity = results.fidelity(records, "teachers").set_index("method")["test agreement"]
    table["teacher_accuracy"] = [accuracy[m] for m in table["method"]]
    table["test_agreement"] = [fidelity.get(m, float("nan")) for m in table["method"]]
    table = table.sort_values("teacher_accuracy", ignore_index=True)
    if table.empty or (table["n_pairs"] < 2).all():
        return table, "Fewer than two seeds per teacher: no estimate of seed noise, nothing is ranked."
    lines = ["From the weakest teacher to the strongest (student minus CE, uncorrected 95% interval; the Holm "
             f"verdict of 06's family for {', '.join(m for m in names if m not in own) or 'none'}, of 09's for the rest):"]
    for row, family in zip(table.itertuples(), table["verdict from"]):
        lines.append(f"- {row.method}: teacher {row.teacher_accuracy:.2f}%, student minus CE {row.mean_diff:+.2f} "
                     f"[{row.ci95_low:+.2f}, {row.ci95_high:+.2f}]: {_holds(row, family)}")
    best, strongest = table.loc[table["mean_diff"].idxmax()], table.iloc[-1]
    if best["method"] == strongest["method"]:
        lines.append(f"The most accurate teacher ({strongest['method']}) gave the largest mean gain here.")
        runner_up = table.drop(index=table.index[-1]).sort_values("mean_diff").iloc[-1] if len(table) > 1 else None
        pair = _pair(records, strongest["method"], runner_up["method"]) if runner_up is not None else None
        if pair is not None:
            lines.append(f"Against the next best ({runner_up['method']}): {_difference(pair)}, "
                         + ("an interval above zero (uncorrected)." if pair["ci95_low"] > 0 else
                            "an interval that includes zero: seeds cannot tell the two teachers apart."))
    else:
        pair = _pair(records, best["method"], strongest["method"])
        lines.append(f"The largest mean gain came from {best['method']}'s teacher ({best['teacher_accuracy']:.2f}%), "
                     f"not from the most accurate one ({strongest['teacher_accuracy']:.2f}%)"
                     + (f": the two students differ by {_difference(pair)}, " + (
                         "an interval above zero, but a comparison chosen after seeing the results (uncorrected): a "
                         "lead for a new experiment, not a finding." if pair["ci95_low"] > 0 else
                         "an interval that includes zero: seeds cannot tell them apart.") if pair is not None else "."))
    return table, "\n".join(lines)


def against_reference(records: list[dict]) -> str:
    """The reference table reproduced or refuted row by row: for each of its rows, whether its
    one-run number lies inside this run's mean ± 2 std over seeds (seed noise, not a test: a
    single run drawn from our spread would land there about 95% of the time); then what KD from a
    trained teacher gives against the untrained-teacher row it reported as KD."""
    table = results.table(records).set_index("method")
    lines = []
    for method, theirs in results.REFERENCE.items():
        if method not in table.index:
            continue
        row = table.loc[method]
        name = METHODS[method].label.replace("\n", " ") if method in METHODS else method
        if row["n_seeds"] < 2:
            lines.append(f"- {name}: {theirs:.2f} in the reference, {row['mean']:.2f} here (one run each): "
                         f"{row['mean'] - theirs:+.2f} points; one run cannot say whether that is more than noise.")
            continue
        low, high = row["mean"] - 2 * row["std"], row["mean"] + 2 * row["std"]
        inside = low <= theirs <= high
        teachers = ("; the reference's teacher was untrained, this row's trained: not the same experiment"
                    if method in results.REFERENCE_UNTRAINED and method != "kd_untrained" else "")
        lines.append(f"- {name}: {theirs:.2f} in the reference, {row['mean']:.2f} ± {row['std']:.2f} here "
                     f"({int(row['n_seeds'])} seeds): " + (f"inside mean ± 2 std ({low:.2f} to {high:.2f}): reproduced"
                     if inside else f"outside mean ± 2 std ({low:.2f} to {high:.2f}), "
                     f"{'below' if theirs < low else 'above'} it: not reproduced") + f"{teachers}.")
    if not lines:
        return "No run of a method in the reference table yet."
    trained = _pair(records, "kd", "kd_untrained")
    if trained is not None and "kd" in table.index:
        kd = table.loc["kd"]
        lines.append(f"KD from the trained teacher: {kd['mean']:.2f} ± {kd['std']:.2f}%, against the "
                     f"{results.REFERENCE['kd_untrained']:.2f} the reference reported as KD (from an untrained "
                     f"teacher); minus KD from an untrained teacher here, paired by seed: {_difference(trained)}: "
                     + ("seeds cannot tell the two teachers apart." if trained["ci95_low"] <= 0 <= trained["ci95_high"] else
                        f"the trained teacher teaches {'more' if trained['ci95_low'] > 0 else 'less'}, holding after "
                        "Holm over 06's family." if _holm_verdicts(records).get(("kd", "kd_untrained"), False) else
                        "the interval excludes zero uncorrected but does not hold after Holm over 06's family: "
                        "not shown beyond seed noise."))
    return "\n".join(lines)


def _holm_verdicts(records: list[dict]) -> pd.Series:
    """Whether each of 06's comparisons that has runs holds after Holm's correction over them,
    indexed by (method, baseline)."""
    return comparisons(records).set_index(["method", "baseline"])["holm"]
