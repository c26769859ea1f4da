"""kdlib.report: the sentences each notebook ends with follow the numbers."""

import pandas as pd

from kdlib import report
from test_results import rec


def _sweep(values):
    return pd.DataFrame({"beta": [0.0, 0.0, 250.0, 250.0], "seed": [0, 1, 0, 1],
                         "val_accuracy": values, "accuracy": [60.0] * 4})


def test_a_sweep_ranks_values_only_beyond_seed_noise():
    clear = report.sweep(_sweep([61.0, 61.2, 64.0, 64.2]), "beta")
    assert "chooses 250" in clear and "so the knob matters here" in clear
    noisy = report.sweep(_sweep([61.0, 62.0, 61.5, 62.4]), "beta")
    assert "chooses 250" in noisy and "does not rank the values firmly" in noisy


def test_the_distillation_lesson_says_whether_kd_beats_ce_and_both_controls():
    ce = [rec("ce", s, a) for s, a in enumerate([0.62, 0.625, 0.63])]
    kd = [rec("kd", s, a) for s, a in enumerate([0.66, 0.664, 0.67])]
    untrained = [rec("kd_untrained", s, a, control="untrained") for s, a in enumerate([0.64, 0.641, 0.645])]
    ls = [rec("ls", s, a) for s, a in enumerate([0.63, 0.632, 0.64])]
    assert "against both controls all lie above zero" in report.distillation(ce + kd + untrained + ls)
    worse = [rec("kd", s, a) for s, a in enumerate([0.62, 0.63, 0.62])]
    assert "includes zero: no gain is shown here" in report.distillation(ce + worse + untrained + ls)


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
