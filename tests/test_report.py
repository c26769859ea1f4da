"""kdlib.report: the sentences each notebook ends with follow the numbers."""

import pandas as pd

from kdlib import report, results
from test_results import rec


def _sweep(values, betas=(0.0, 250.0)):
    return pd.DataFrame({"beta": [b for b in betas for _ in (0, 1)], "seed": [0, 1] * len(betas),
                         "val_accuracy": values, "accuracy": [60.0] * len(values)})


def test_a_sweep_ranks_values_only_beyond_seed_noise_paired_by_seed():
    clear = report.sweep(_sweep([61.0, 61.2, 64.0, 64.2]), "beta")
    assert "chooses 250" in clear and "0: -3.00 [-3.00, -3.00]" in clear and "the knob matters here" in clear
    noisy = report.sweep(_sweep([61.0, 62.0, 61.5, 62.4]), "beta")
    assert "chooses 250" in noisy and "does not rank the values firmly" in noisy
    # Seeds far apart, but each seed one point lower at beta 0: pairing sees what the spread hides.
    paired = report.sweep(_sweep([60.0, 64.0, 61.0, 65.0]), "beta")
    assert "0: -1.00 [-1.00, -1.00]" in paired and "the knob matters here" in paired
    mixed = report.sweep(_sweep([61.0, 61.2, 64.0, 64.2, 63.0, 64.5], betas=(0.0, 250.0, 1000.0)), "beta")
    assert "0 lies below it, holding after Holm over this sweep's 2 comparisons; 1000 cannot be told from it" in mixed
    # Each interval excludes zero on its own (p about 0.03), but not after Holm over the two comparisons.
    uncorrected = report.sweep(_sweep([61.0, 61.1, 62.0, 62.2, 61.0, 61.1], betas=(0.0, 250.0, 1000.0)), "beta")
    assert "-1.05 [-1.69, -0.41]" in uncorrected and "does not rank the values firmly" in uncorrected
    one_seed = report.sweep(_sweep([61.0, 64.0], betas=(0.0,)).assign(beta=[0.0, 250.0], seed=[0, 0]), "beta")
    assert "with one seed a value, seed noise is unknown" in one_seed


def test_beta_zero_is_held_to_ce_where_it_can_be_and_a_gap_is_a_bug_only_there():
    from types import SimpleNamespace
    one_thread, two_threads = "CPU (2 cores, 1 thread)", "CPU (2 cores, 2 threads)"
    ce = [SimpleNamespace(config=SimpleNamespace(seed=seed), metrics={"val_accuracy": accuracy}, device=one_thread)
          for seed, accuracy in [(1, 0.6), (0, 0.7536)]]
    at_zero = pd.DataFrame({"seed": [0, 1], "val_accuracy": [75.36, 60.0], "device": [one_thread] * 2})
    same = report.same_as_ce(at_zero, ce, "validation").splitlines()
    assert same == ["seed 0: beta = 0 gives 75.36% on validation, CE gave 75.36%: the same, as it must be",
                    "seed 1: beta = 0 gives 60.00% on validation, CE gave 60.00%: the same, as it must be"]
    # The full profile's CE trained two seeds side by side (one thread each), its sweep point alone.
    apart = report.same_as_ce(at_zero.assign(val_accuracy=[76.04, 60.0], device=[two_threads, one_thread]), ce,
                              "validation")
    assert ("seed 0: beta = 0 gives 76.04% on validation, CE gave 75.36%: +0.68 points apart, which this check "
            "cannot judge: CE ran on CPU (2 cores, 1 thread), this run on CPU (2 cores, 2 threads), and another "
            "thread count adds") in apart and "the same, as it must be" in apart.splitlines()[1]
    wrong = report.same_as_ce(at_zero.assign(val_accuracy=[75.36, 61.0]), ce, "validation")
    assert "seed 1: beta = 0 gives 61.00% on validation, CE gave 60.00%: +1.00 points apart on the same recorded " \
           "CPU and thread count" in wrong and "please report it" in wrong
    gpus = [SimpleNamespace(config=c.config, metrics=c.metrics, device="NVIDIA A100") for c in ce]
    on_gpus = report.same_as_ce(at_zero.assign(val_accuracy=[75.0, 60.5], device="NVIDIA H100"), gpus, "validation")
    assert "another device's" in on_gpus and "thread count" not in on_gpus and "report it" not in on_gpus
    unknown = report.same_as_ce(at_zero.assign(val_accuracy=[75.0, 60.5], device=""), ce, "validation")
    assert unknown.count("is not recorded, so this cannot be checked") == 2
    missing = report.same_as_ce(at_zero.assign(val_accuracy=[75.0, 60.5], device=float("nan")), ce, "validation")
    assert missing.count("is not recorded, so this cannot be checked") == 2
    # A CE seed without a beta = 0 run is said, not a KeyError; the test split where there is no validation.
    tested = [SimpleNamespace(config=SimpleNamespace(seed=seed), metrics={"accuracy": 0.7}, device=one_thread)
              for seed in (0, 2)]
    lone = report.same_as_ce(at_zero.assign(accuracy=70.0), tested, "test").splitlines()
    assert lone == ["seed 0: beta = 0 gives 70.00% on test, CE gave 70.00%: the same, as it must be",
                    "seed 2: no beta = 0 run at this seed to hold against CE's"]


def test_kd_is_said_to_bring_the_student_closer_to_its_teacher_only_beyond_seed_noise():
    def agreeing(method, seed, agreement):
        record = rec(method, seed, 0.62 if method == "ce" else 0.66)
        record["metrics"]["teacher_agreement"] = agreement
        return record
    teacher = [rec("teacher", 0, 0.85)]
    ce = [agreeing("ce", s, a) for s, a in enumerate([0.780, 0.790, 0.770])]
    closer = [agreeing("kd", s, a) for s, a in enumerate([0.790, 0.801, 0.779])]  # about +1 point at every seed
    said = report.distillation(teacher + ce + closer)
    assert "KD minus CE +1.00 points (95% interval" in said and "KD made the student predict more like its teacher" in said
    # The same means (79.0 against 78.0), but +2, -1, +2 points by seed: the interval includes zero.
    noisy = report.distillation(teacher + ce + [agreeing("kd", s, a) for s, a in enumerate([0.800, 0.780, 0.790])])
    assert "within seed noise" in noisy and "predict more like its teacher (uncorrected" not in noisy
    further = report.distillation(teacher + ce + [agreeing("kd", s, a) for s, a in enumerate([0.770, 0.779, 0.761])])
    assert "KD made the student predict less like its teacher" in further
    # Records of older code, without the agreement: one seed pair left, no interval.
    unmeasured = [rec(r["method"], r["seed"], r["metrics"]["accuracy"]) if r["seed"] else r for r in ce + closer]
    assert "fewer than two seeds of both, so whether KD made the student predict more" in report.distillation(teacher + unmeasured)
    never = [rec(r["method"], r["seed"], r["metrics"]["accuracy"]) for r in ce + closer]  # none carries it
    assert "agrees with the teacher" not in report.distillation(teacher + never)


def test_the_distillation_lesson_says_whether_kd_beats_ce_and_both_controls():
    ce = [rec("ce", s, a) for s, a in enumerate([0.62, 0.625, 0.63])]
    kd = [rec("kd", s, a) for s, a in enumerate([0.66, 0.664, 0.67])]
    untrained = [rec("kd_untrained", s, a, control="untrained") for s, a in enumerate([0.64, 0.641, 0.645])]
    ls = [rec("ls", s, a) for s, a in enumerate([0.63, 0.632, 0.64])]
    assert "against these two controls all lie above zero, and all hold after Holm" in report.distillation(ce + kd + untrained + ls)
    near = [rec("ls", s, a) for s, a in enumerate([0.655, 0.654, 0.659])]  # KD minus it: +0.5, +1.0, +1.1
    small = [rec("kd_small_teacher", s, a, teacher="S", control="a small teacher")  # a noisy comparison: Holm's
             for s, a in enumerate([0.650, 0.634, 0.675])]                           # multiplier for `near` grows
    said = report.distillation(ce + kd + untrained + near + small)
    assert "all lie above zero uncorrected, but after Holm's correction" in said and "is not established here" in said
    assert "of these three only KD − CE, KD − kd_untrained hold for now" in said  # the small teacher's is another question
    worse = [rec("kd", s, a) for s, a in enumerate([0.62, 0.63, 0.62])]
    assert "includes zero: no gain is shown here" in report.distillation(ce + worse + untrained + ls)
    # One seed (the smoke profile): no interval, and the sentence says so instead of failing.
    assert "one seed" in report.distillation([rec("ce", 0, 0.62), rec("kd", 0, 0.66)]).lower()
    # Fewer comparisons than 06's family: a Holm verdict here is provisional and says so.
    assert "for now" in said and "where fewer may hold" in said


def test_the_feature_methods_are_reported_against_ce_beside_the_tutorials_own_difference():
    ce = [rec("ce", s, a) for s, a in enumerate([0.62, 0.625, 0.63])]
    cosine = [rec("cosine", s, a) for s, a in enumerate([0.63, 0.635, 0.64])]    # +1.0 every seed
    regressor = [rec("regressor", s, a) for s, a in enumerate([0.62, 0.64, 0.62])]  # +0.17, spread
    lines = report.features(ce + cosine + regressor).split("\n")
    assert lines[0].startswith("cosine minus CE, paired by seed: +1.00 points") and "excludes zero on its own" in lines[0]
    assert "+1.64, one run each" in lines[0]  # the tutorial's page: 71.50 against 69.86
    assert lines[1].startswith("regressor minus CE") and "includes zero" in lines[1] and "+0.96" in lines[1]


def test_no_notebook_sentence_calls_a_difference_real_that_holms_correction_rejects():
    """One verdict per comparison: act AT's uncorrected interval excludes zero, but with 06's
    family of comparisons Holm rejects it; no sentence of 04-06 may call it beyond noise."""
    ce = [rec("ce", s, a) for s, a in enumerate([0.620, 0.625, 0.630])]
    act = [rec("act_at", s, a) for s, a in enumerate([0.625, 0.632, 0.633])]  # +0.5, +0.7, +0.3: p 0.049
    kd = [rec("kd", s, a) for s, a in enumerate([0.630, 0.620, 0.641])]      # +1.0, -0.5, +1.1: noisy
    records = ce + act + kd
    row = report.comparisons(records).set_index("method").loc["act_at"]
    assert row["ci95_low"] > 0 and not row["holm"]  # the case: uncorrected yes, corrected no
    said = [report.attention(records, "act_at"), report.verdict(records, "act_at"), report.distillation(records)]
    assert not any("beyond seed noise" in s for s in said)
    assert "uncorrected" in said[0] and "06 decides it with Holm's correction" in said[0]
    assert "- act_at − ce: +0.50 points" in report.overall(records) and "does not hold" in report.overall(records)


def test_06_says_whether_kds_gain_over_ce_is_more_than_its_controls_give():
    ce = _seeds("ce", [0.600, 0.605, 0.610])
    kd = _seeds("kd", [0.640, 0.646, 0.650])
    untrained = _seeds("kd_untrained", [0.630, 0.650, 0.645], control="untrained")  # KD's lead: +1.0, -0.4, +0.5
    ls = _seeds("ls", [0.600, 0.604, 0.611])                                          # KD's lead: +4.0, +4.2, +3.9
    said = report.overall(ce + kd + untrained + ls).split("\n")
    assert "- kd − ce: +4.03 points" in said[1] and said[1].endswith("holds.")
    assert ("KD's gain over CE holds, but its lead over kd_untrained does not hold after Holm: this run does not show "
            "that KD gives more than this control gives, so part of its gain may not be the teacher's knowledge "
            "(its lead over ls holds).") in said
    beaten = _seeds("kd_untrained", [0.600, 0.606, 0.611], control="untrained")
    assert "KD leads each of its controls (kd_untrained, ls) after Holm" in report.overall(ce + kd + beaten + ls)
    flat = _seeds("kd", [0.600, 0.615, 0.605])
    assert "KD's gain over CE does not hold, so no gain here can be credited to the teacher." in report.overall(ce + flat)


def test_01_names_the_pair_of_classes_the_teacher_confuses_most_both_ways():
    from types import SimpleNamespace
    confusion = [[90, 2, 8], [1, 95, 4], [9, 2, 89]]  # classes 0 and 2: 8% and 9%; 1 and 2: 4% and 2%
    text = report.teacher(SimpleNamespace(metrics={"accuracy": 0.91, "per_class_accuracy": [0.90, 0.95, 0.89],
                                                   "confusion": confusion}))
    assert "The pair it confuses most: 0 and 2 (8.0% of the 0 images called 2, 9.0% the other way)." in text


def _seeds(method, values, **identity):
    return [rec(method, s, a, **identity) for s, a in enumerate(values)]


def test_kds_gain_splits_into_a_same_image_teachers_part_and_the_larger_teachers_extra_data():
    ce = _seeds("ce", [0.600, 0.605, 0.610])
    kd = _seeds("kd", [0.640, 0.646, 0.650], teacher_images=45000, teacher_accuracy=0.85)
    small = _seeds("kd_small_teacher", [0.610, 0.616, 0.620], teacher="S", control="a small teacher",
                   teacher_images=5000, teacher_accuracy=0.6, teacher_saw_students_images=True)
    text = report.teacher_data(ce + kd + small)
    assert "KD's teacher trained on 45,000 images and reaches 85.00%" in text
    assert "the small teacher on 5,000 images" in text and "(exactly the students' images)" in text
    assert "KD minus CE: +4.03 points" in text
    assert "KD from the small teacher minus CE: +1.03 points" in text and "pays with a teacher of these images alone" in text
    assert "KD minus KD from the small teacher: +3.00 points" in text and "images the students never saw" in text
    flat = _seeds("kd_small_teacher", [0.600, 0.610, 0.600], teacher="S", control="a small teacher",
                  teacher_images=5000, teacher_saw_students_images=True)
    assert "no gain is shown" in report.teacher_data(ce + kd + flat)
    assert "cannot be split" in report.teacher_data(ce + kd)
    # An interval above zero that Holm's correction over 06's family rejects is not called a gain.
    near = _seeds("kd_small_teacher", [0.605, 0.615, 0.621], teacher="S", control="a small teacher",
                  teacher_images=5000, teacher_saw_students_images=True)
    ls = _seeds("ls", [0.640, 0.636, 0.652])  # a comparison with a large p-value: Holm's multiplier for `near` grows
    pairs = report.comparisons(ce + kd + near + ls).set_index("method")
    assert pairs.loc["kd_small_teacher", "ci95_low"] > 0 and not pairs.loc["kd_small_teacher", "holm"]
    text = report.teacher_data(ce + kd + near + ls)
    assert "does not hold after Holm's correction: not shown beyond seed noise" in text and " pays " not in text
    assert "pays with a teacher of these images alone (holds after Holm)" in report.teacher_data(ce + kd + near)


def test_what_one_seed_would_have_said_beside_the_paired_verdict():
    ce = _seeds("ce", [0.600, 0.605, 0.610])
    kd = _seeds("kd", [0.640, 0.646, 0.650])
    act = _seeds("act_at", [0.610, 0.600, 0.612])  # +1.0, -0.5, +0.2: the sign flips
    table = report.one_seed(ce + kd + act).set_index("comparison")
    assert table.loc["kd − ce", "seeds above"] == 3 and bool(table.loc["kd − ce", "holds after Holm"])
    assert table.loc["act_at − ce", "seeds above"] == 2 and table.loc["act_at − ce", "seeds below"] == 1
    assert round(table.loc["act_at − ce", "seed 1"], 2) == -0.5
    reading = report.one_seed_reading(table.reset_index())
    assert reading.startswith("1 of 2 comparisons change sign") and "(act_at − ce)" in reading
    assert "+0.94 points in its PyTorch 2.0 build and -0.22" in reading


def test_08_ranks_each_step_of_teaching_and_reads_patience_from_two_schedules():
    ce = _seeds("ce", [0.600, 0.605, 0.610])
    kd = _seeds("kd", [0.640, 0.646, 0.650])
    plain = _seeds("kd_plain", [0.600, 0.604, 0.612])
    fresh = _seeds("kd_fresh", [0.650, 0.655, 0.661])
    ce_fresh = _seeds("ce_fresh", [0.610, 0.611, 0.622], control="no teacher")
    text = report.consistency(ce + kd + plain + fresh + ce_fresh)
    assert "- kd − kd_plain: +4.00 points" in text and "holds after Holm: a gain." in text
    assert "- kd_plain − ce: +0.03 points" in text and "- kd_fresh − ce_fresh: +4.10 points" in text
    assert "uncorrected 95% intervals" in text and "kd_mixup" not in text  # no mixup runs: no row
    assert text.splitlines()[-1] == ("In sum, gains that hold: kd − kd_plain, kd_fresh − kd, kd_fresh − ce_fresh; "
                                     "the other 1 cannot be told from seed noise.")
    worse = _seeds("kd_fresh", [0.620, 0.626, 0.631])  # below KD on every seed
    assert "losses that hold: kd_fresh − kd" in report.consistency(ce + kd + plain + worse + ce_fresh).splitlines()[-1]
    long_config = {"epochs": 60}
    ce_long = _seeds("ce_fresh", [0.610, 0.615, 0.620], config=long_config, control="no teacher")
    kd_long = _seeds("kd_fresh", [0.660, 0.667, 0.672], config=long_config)
    said = report.patience(fresh + ce_fresh, ce_long + kd_long, "kd_fresh", "ce_fresh")
    assert said.startswith("kd_fresh minus ce_fresh: +4.10 points") and "at 60 epochs" in said
    assert "+5.13 points" in said and "the change in the gain" in said.lower()
    # Patience joins 08's family: its row is named with its schedule, and Holm counts it.
    family = report.consistency_comparisons(ce + kd + plain + fresh + ce_fresh, ce_long + kd_long)
    assert family["method"].tolist()[-1] == "kd_fresh (60 epochs)" and len(family) == 5
    assert family["p_holm"].tolist() == results.holm(family["p_value"].tolist())
    short_only = report.consistency_comparisons(ce + kd + plain + fresh + ce_fresh)
    assert (family["p_holm"].iloc[:4].to_numpy() >= short_only["p_holm"].to_numpy()).all()
    assert "- kd_fresh (60 epochs) − ce_fresh (60 epochs): +5.13 points" in report.consistency(
        ce + kd + plain + fresh + ce_fresh, ce_long + kd_long)


def test_09_gives_one_verdict_per_comparison_and_reads_the_order_of_the_teachers():
    ce = _seeds("ce", [0.600, 0.605, 0.610])
    kd = _seeds("kd", [0.640, 0.646, 0.650])
    early = _seeds("kd_epoch005", [0.650, 0.657, 0.660], teacher="E")
    untrained = _seeds("kd_untrained", [0.620, 0.621, 0.633], control="untrained")
    table, text = report.teachers(ce + kd + early + untrained, {"kd": 85.0, "kd_epoch005": 63.0, "kd_untrained": 10.0})
    # 06 tests the untrained teacher's student against KD only: its gain over CE is 09's to test.
    assert table["method"].tolist() == ["kd_untrained", "kd_epoch005", "kd"]
    assert table["verdict from"].tolist() == ["09", "09", "06"] and "of 06's family for kd," in text
    own = results.comparisons(ce + kd + early + untrained, [("kd_epoch005", "ce"), ("kd_untrained", "ce")])
    assert table.set_index("method").loc["kd_untrained", "p_holm"] == own.set_index("method").loc["kd_untrained", "p_holm"]
    kd_row = table.set_index("method").loc["kd"]
    assert bool(kd_row["holm"]) == bool(report.comparisons(ce + kd + early).set_index("method").loc["kd", "holm"])
    assert "The largest mean gain came from kd_epoch005's teacher (63.00%), not from the most accurate one (85.00%)" in text
    assert "chosen after seeing the results" in text and "not a finding" in text
    # Each line names the family its verdict comes from: the same p can hold in one and not in the other.
    said = {line.split(":")[0]: line for line in text.splitlines() if line.startswith("- ")}
    assert said["- kd"].endswith("(in 06's family).") and said["- kd_epoch005"].endswith("(in 09's family).")
    _, text = report.teachers(ce + kd, {"kd": 85.0})
    assert "The most accurate teacher (kd) gave the largest mean gain here." in text


def test_fidelity_sets_the_students_taught_beside_those_trained_from_labels_alone():
    def measured(method, seed, train, test):
        fidelity = {"train": {"agreement": train, "kl": 0.5}, "test": {"agreement": test, "kl": 0.7}}
        return rec(method, seed, 0.6, metrics={"accuracy": 0.6, "ece": 0.1, "fidelity": fidelity})
    records = [measured("ce", s, 0.80, 0.64) for s in (0, 1)] + [measured("ce_fresh", s, 0.81, 0.66) for s in (0, 1)]
    records += [measured("kd", s, 0.76, 0.68) for s in (0, 1)] + [measured("kd_plain", s, 0.75, 0.67) for s in (0, 1)]
    said = report.fidelity(records, "consistency").split("\n")
    assert said[0].startswith("- kd: agrees with its teacher on 76.0%") and not any(s.startswith("- ce") for s in said)
    assert said[-1] == ("Trained from labels alone, ce, ce_fresh agree with the teacher on 80.0-81.0% of the training "
                        "images and 64.0-66.0% of the test images; the distilled students with their own teacher on 75.0-76.0% and 67.0-68.0%.")
    # 09's students each have a teacher of their own: CE's agreement with the final one compares with none of them
    untrained = [dict(measured("kd_untrained", s, 0.10, 0.10), teacher="U", control="untrained") for s in (0, 1)]
    assert "- kd_untrained: agrees" in report.fidelity(records + untrained, "teachers")
    assert "Trained from labels alone" not in report.fidelity(records + untrained, "teachers")
    alone = report.fidelity([r for r in records if r["method"] != "ce_fresh"], "consistency").split("\n")[-1]
    assert alone.startswith("Trained from labels alone, ce agrees with the teacher on 80.0% of the training images")
    assert ("The student closest to its teacher on test images is kd (68.0%), then kd_plain (67.0%): kd minus kd_plain "
            "+1.00 points (95% interval +1.00 to +1.00, 2 seeds), closer beyond seed noise (uncorrected).") in said
    # The higher mean alone does not make kd the closer one: seed 1 reverses the order.
    noisy = [measured("kd", s, 0.76, a) for s, a in enumerate([0.70, 0.66, 0.69])] + \
        [measured("kd_plain", s, 0.75, a) for s, a in enumerate([0.67, 0.67, 0.67])]
    assert report.fidelity(noisy, "consistency").split("\n")[-1].endswith(
        "within seed noise: these seeds do not tell which is closer.")


def test_the_reference_rows_are_reproduced_or_refuted_against_mean_plus_minus_two_std():
    ce = _seeds("ce", [0.720, 0.725, 0.730])                # 72.50 ± 0.50: 72.35 inside
    untrained = _seeds("kd_untrained", [0.700, 0.702, 0.704], control="untrained")  # 70.20 ± 0.20: 74.54 above
    kd = _seeds("kd", [0.740, 0.746, 0.750])
    teacher = [rec("teacher", 0, 0.80)]
    said = report.against_reference(ce + untrained + kd + teacher).split("\n")
    assert said[0].startswith("- teacher: 83.84 in the reference, 80.00 here (one run each): -3.84 points")
    assert said[1] == "- CE: 72.35 in the reference, 72.50 ± 0.50 here (3 seeds): inside mean ± 2 std (71.50 to 73.50): reproduced."
    assert "74.54 in the reference, 70.20 ± 0.20 here" in said[2] and "above it: not reproduced." in said[2]
    assert "not the same experiment" not in said[2]  # kd_untrained is the reference's own experiment
    assert said[-1].startswith("KD from the trained teacher: 74.53 ± 0.50%, against the 74.54 the reference reported")
    assert "+4.33 points" in said[-1] and said[-1].endswith("the trained teacher teaches more, holding after Holm over 06's family.")
    noisy = _seeds("kd", [0.705, 0.740, 0.706])  # +0.3, +3.8, +0.2: an interval across zero
    assert report.against_reference(ce + untrained + noisy + teacher).endswith("seeds cannot tell the two teachers apart.")
    grad = _seeds("grad_at", [0.724, 0.725, 0.726])
    assert "not the same experiment" in report.against_reference(ce + grad)
    assert report.against_reference([]) == "No run of a method in the reference table yet."
    # an interval above zero that Holm over 06's family rejects is not called a difference
    near = _seeds("kd_untrained", [0.735, 0.736, 0.739], control="untrained")  # kd minus it: +0.5, +1.0, +1.1
    ls = _seeds("ls", [0.740, 0.736, 0.752])
    assert report.against_reference(ce + near + kd + ls).endswith("does not hold after Holm over 06's family: "
                                                                  "not shown beyond seed noise.")
