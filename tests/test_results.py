import os
import warnings

import pandas as pd
import pytest

import kdlib
from kdlib import plots, results

CONFIG = {"epochs": 30, "batch_size": 128, "temperature": 4.0, "kd_weight": 0.5, "beta": 250.0}


def rec(method, seed, acc, **identity):
    """A record as experiment writes it; identity overrides (source, n_train, teacher, ...)."""
    config = {**CONFIG, **identity.pop("config", {})}
    return {"method": method, "seed": seed, "metrics": {"accuracy": acc, "ece": 0.1},
            "seconds": 1.0, "config": config, "history": [], "source": "ImageFolder x",
            "n_train": 50000, "n_test": 10000, "teacher": None if method in ("ce", "teacher") else "T",
            **({"weights": "T"} if method == "teacher" else {}), **identity}


def test_records_never_overwrite_each_other(tmp_path):
    a = results.save(rec("kd", 0, 0.5), tmp_path)
    b = results.save(rec("kd", 0, 0.6), tmp_path)
    assert a != b and a.exists() and b.exists()
    assert not list(tmp_path.glob(".*"))  # no temporary file left behind
    assert [r["metrics"]["accuracy"] for r in results.load(tmp_path)] == [0.5, 0.6]


def test_table_gives_mean_and_std_over_seeds_with_the_reference():
    records = [rec("ce", 0, 0.70), rec("ce", 1, 0.72), rec("kd", 0, 0.75), rec("kd", 1, 0.77),
               rec("kd", 1, 0.79)]  # a re-run of seed 1 replaces the earlier one
    table = results.table(records).set_index("method")
    assert list(table.index) == ["ce", "kd"]
    assert table.loc["ce", "mean"] == pytest.approx(71.0)
    assert table.loc["ce", "std"] == pytest.approx(1.41421, rel=1e-4)
    assert table.loc["kd", "mean"] == pytest.approx(77.0)
    assert table.loc["kd", "n_seeds"] == 2
    assert table.loc["ce", "reference"] == 72.35
    assert table.loc["kd", "reference"] != table.loc["kd", "reference"]  # NaN: the reference's "KD" had no trained teacher


def test_the_references_distillation_numbers_stand_on_the_untrained_teacher_rows():
    records = [rec("ce", 0, 0.70), rec("kd_untrained", 0, 0.71, control="untrained"), rec("grad_at", 0, 0.7)]
    table = results.table(records).set_index("method")
    assert table.loc["kd_untrained", "reference"] == 74.54
    assert table.loc["kd_untrained", "reference_teacher"] == "untrained"
    assert table.loc["grad_at", "reference_teacher"] == "untrained"
    assert "72.50 (untrained teacher)" in results.format_table(results.table(records))


def test_paired_differences_pair_by_seed():
    records = [rec("ce", 0, 0.70), rec("ce", 1, 0.72), rec("kd", 0, 0.73), rec("kd", 1, 0.74)]
    diff = results.paired_differences(records).set_index("method")
    assert diff.loc["kd", "mean_diff"] == pytest.approx(2.5)
    assert diff.loc["kd", "std_diff"] == pytest.approx(0.70711, rel=1e-4)
    # Two seeds: t(0.975, 1) = 12.706, so the 95% interval is 2.5 ± 6.35 and includes zero.
    assert diff.loc["kd", "ci95_low"] == pytest.approx(2.5 - 12.706 * 0.70711 / 2 ** 0.5, rel=1e-3)
    assert not diff.loc["kd", "excludes_zero"]


def test_a_consistent_gain_over_three_seeds_has_an_interval_that_excludes_zero():
    records = [rec("ce", s, a) for s, a in enumerate([0.70, 0.71, 0.72])]
    records += [rec("kd", s, a) for s, a in enumerate([0.73, 0.741, 0.749])]  # +3.0, +3.1, +2.9
    records += [rec("act_at", s, a) for s, a in enumerate([0.69, 0.72, 0.725])]  # -1, +1, +0.5
    diff = results.paired_differences(records).set_index("method")
    assert diff.loc["kd", "ci95_low"] == pytest.approx(3.0 - 4.303 * 0.1 / 3 ** 0.5, rel=1e-3)
    assert diff.loc["kd", "excludes_zero"]
    assert not diff.loc["act_at", "excludes_zero"]


def test_per_class_accuracy_averages_seeds_in_the_series_order():
    records = [rec(m, s, 0.5) for m, s in [("kd", 0), ("ce", 0), ("ce", 1)]]
    for r, per_class in zip(records, [[0.9, 0.1], [0.4, 0.6], [0.6, 0.8]]):
        r["metrics"]["per_class_accuracy"] = per_class
    result = results.per_class_accuracy(records)
    assert list(result) == ["ce", "kd"]
    assert result["ce"] == pytest.approx([0.5, 0.7]) and result["kd"] == pytest.approx([0.9, 0.1])


def test_records_of_other_data_are_never_paired_with_the_newest_run():
    # CE on synthetic data (1 epoch) next to KD on CIFAR-10: paired, they gave "+60 points".
    records = [rec("ce", s, 0.1 + 0.6, source="synthetic", n_train=512, config={"epochs": 1}) for s in (0, 1)]
    records += [rec("kd", s, 0.75 + 0.001 * s) for s in (0, 1)]
    with pytest.warns(UserWarning, match="Left out 2 'ce' record.*source, n_train, epochs"):
        diff = results.paired_differences(records)
    assert diff.empty  # no CE run of the same kind: nothing to pair
    with pytest.warns(UserWarning):
        assert list(results.table(records)["method"]) == ["kd"]


def test_one_method_with_two_settings_is_not_averaged():
    records = [rec("kd", 0, 0.70, config={"temperature": 1.0}), rec("kd", 1, 0.71, config={"temperature": 1.0}),
               rec("kd", 0, 0.80), rec("kd", 1, 0.82), rec("ce", 0, 0.75), rec("ce", 1, 0.76)]
    with pytest.warns(UserWarning, match="Left out 2 'kd' record.*temperature"):
        table = results.table(records).set_index("method")
    assert table.loc["kd", "mean"] == pytest.approx(81.0)  # the newest settings, alone
    # CE does not read the temperature: its records stay comparable with KD at any T.
    assert table.loc["ce", "n_seeds"] == 2


def test_the_teacher_row_is_the_teacher_the_students_distilled_from():
    records = [rec("teacher", 0, 0.80, weights="T"), rec("teacher", 0, 0.60, weights="other"),
               rec("ce", 0, 0.7), rec("kd", 0, 0.72)]
    with pytest.warns(UserWarning, match="Left out 1 'teacher' record.*not the teacher of these students"):
        table = results.table(records).set_index("method")
    assert table.loc["teacher", "mean"] == pytest.approx(80.0)
    # A resumed series measures its teacher again: the newest record of it is shown, the older
    # ones superseded without a word (they warned, falsely, "not the teacher of these students").
    again = [rec("teacher", 0, 0.80, weights="T", time=f"2026-12-0{day}T00:00:00Z") for day in (1, 2, 3)]
    again[-1]["metrics"]["accuracy"] = 0.81
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        table = results.table(again + [rec("kd", 0, 0.7, time="2026-12-04T00:00:00Z")]).set_index("method")
    assert table.loc["teacher", "mean"] == pytest.approx(81.0)
    # Measured in another precision than the students (85.27% in bf16, 85.19% in float32): the
    # row is the record measured as the students were, though an older one.
    alike = [rec("teacher", 0, 0.8519, weights="T", precision="float32", time="2026-12-01T00:00:00Z"),
             rec("teacher", 0, 0.8527, weights="T", precision="bf16", time="2026-12-02T00:00:00Z"),
             rec("kd", 0, 0.7, precision="float32", time="2026-12-03T00:00:00Z")]
    assert results.table(alike).set_index("method").loc["teacher", "mean"] == pytest.approx(85.19)


def test_records_are_ordered_by_their_stored_time_not_the_files(tmp_path):
    new = results.save({**rec("kd", 0, 0.9), "time": "2026-11-25T12:00:00.000000Z"}, tmp_path)
    old = results.save({**rec("kd", 0, 0.1), "time": "2026-11-24T12:00:00.000000Z"}, tmp_path)
    os.utime(old, (new.stat().st_mtime + 100,) * 2)  # as a plain copy of a run folder can leave them
    assert [r["metrics"]["accuracy"] for r in results.load(tmp_path)] == [0.1, 0.9]
    assert results.table(results.load(tmp_path)).loc[0, "mean"] == pytest.approx(90.0)


def test_one_seed_is_shown_without_a_spread():
    table = results.table([rec("ce", 0, 0.7), rec("kd", 0, 0.72), rec("kd", 1, 0.74)])
    assert table.set_index("method").loc["ce", "std"] != table.set_index("method").loc["ce", "std"]  # NaN
    markdown = results.format_table(table)
    assert "| ce | 1 | 70.00 |" in markdown and "73.00 ± 1.41" in markdown


def test_a_control_with_an_untrained_teacher_stays_in_the_table():
    stale = rec("kd", 1, 0.5, teacher="another trained teacher")  # the oldest run: left out
    records = [stale, rec("teacher", 0, 0.8), rec("ce", 0, 0.70), rec("kd", 0, 0.73),
               rec("kd_untrained", 0, 0.71, teacher="untrained", control="KD from an untrained teacher",
                   recipe="kd")]
    for hour, r in enumerate(records):
        r["time"] = f"2026-11-25T{10 + hour}:00:00.000000Z"
    with pytest.warns(UserWarning, match="Left out 1 'kd'.*teacher"):
        table = results.table(records).set_index("method")
    assert list(table.index) == ["teacher", "ce", "kd", "kd_untrained"]
    assert table.loc["teacher", "mean"] == 80.0 and table.loc["kd", "mean"] == 73.0


def test_a_sweep_of_zero_alone_can_be_drawn_on_a_log_axis():
    import pandas as pd
    from kdlib import plots
    fig = plots.sweep(pd.DataFrame({"beta": [0.0], "seed": [0], "accuracy": [50.0]}), "beta", logx=True)
    assert fig.axes[0].get_xscale() == "linear"
    fig = plots.sweep(pd.DataFrame({"beta": [0.0, 10.0], "seed": [0, 0], "accuracy": [50.0, 51.0]}), "beta", logx=True)
    assert fig.axes[0].get_xscale() == "symlog"


def test_transfer_says_whether_each_attention_method_moved_its_maps_towards_the_teachers():
    def rec(method, seed, act, grad):
        return {"method": method, "seed": seed, "config": {"epochs": 1}, "history": [], "source": "s",
                "device": "cpu", "seconds": 1.0, "time": f"2026-11-25T00:00:0{seed}.000000Z",
                "metrics": {"accuracy": 0.5, "map_similarity": {"act": act, "grad": grad}}}
    records = [rec("ce", 0, [0.90, 0.95], [0.70, 0.80]), rec("ce", 1, [0.92, 0.95], [0.70, 0.80]),
               rec("act_at", 0, [0.95, 0.99], [0.70, 0.80]), rec("act_at", 1, [0.97, 0.99], [0.70, 0.80]),
               rec("grad_at", 0, [0.90, 0.95], [0.72, 0.79]), rec("grad_at", 1, [0.90, 0.95], [0.72, 0.79]),
               {**rec("kd_untrained", 0, [0.99, 0.99], [0.99, 0.99]), "control": "KD from an untrained teacher"}]
    table = results.map_similarity(records).set_index("method")
    assert "kd_untrained" not in table.index  # measured against another teacher
    assert table.loc["act_at", "act 1"] == pytest.approx(0.96) and table.loc["ce", "act 1"] == pytest.approx(0.91)
    act_lines = kdlib.report.attention(records, "act_at").splitlines()
    assert ("0.960 / 0.990, against 0.910 / 0.950 for the CE student. Paired by seed (2 seeds, uncorrected 95% "
            "intervals): +0.050 [+0.050, +0.050] / +0.040 [+0.040, +0.040]: closer at every stage.") in act_lines[-1]
    grad_lines = kdlib.report.attention(records, "grad_at").splitlines()
    assert grad_lines[-1].endswith(": closer at stage 1; farther at stage 2.")
    # Higher means at every stage, but seed 1's maps are farther than CE's: seeds do not show it closer.
    noisy = [rec("ce", s, [0.90, 0.95], [0.7, 0.8]) for s in range(3)] + \
        [rec("act_at", s, [a, b], [0.7, 0.8]) for s, (a, b) in enumerate([(0.99, 0.99), (0.88, 0.94), (0.91, 0.96)])]
    assert kdlib.report.attention(noisy, "act_at").endswith(": no stage differs beyond seed noise.")
    one_seed = [r for r in records if r["seed"] == 0]
    assert "fewer than two seeds of both" in kdlib.report.attention(one_seed, "act_at")


def test_holm_multiplies_the_kth_smallest_p_by_m_minus_k_plus_1_and_keeps_order():
    assert results.holm([0.01, 0.04, 0.03, 0.5]) == pytest.approx([0.04, 0.09, 0.09, 0.5])
    assert results.holm([0.2, float("nan"), 0.01]) == pytest.approx([0.2, float("nan"), 0.02], nan_ok=True)
    assert results.holm([0.9, 0.8]) == pytest.approx([1.0, 1.0])  # capped at 1, never below the one before


def test_comparisons_pair_by_seed_with_a_t_test_and_the_holm_correction():
    records = [rec("ce", s, a) for s, a in enumerate([0.70, 0.71, 0.72])]
    records += [rec("kd", s, a) for s, a in enumerate([0.73, 0.741, 0.749])]    # +3.0, +3.1, +2.9
    records += [rec("ls", s, a) for s, a in enumerate([0.69, 0.72, 0.725])]     # -1, +1, +0.5
    table = results.comparisons(records, [("kd", "ce"), ("ls", "ce"), ("kd", "ls")]).set_index(["method", "baseline"])
    from scipy import stats
    expected = stats.ttest_rel([73, 74.1, 74.9], [70, 71, 72]).pvalue
    assert table.loc[("kd", "ce"), "p_value"] == pytest.approx(expected, rel=1e-6)
    assert table.loc[("kd", "ce"), "p_holm"] == pytest.approx(min(1, 3 * expected), rel=1e-6)
    assert table.loc[("kd", "ce"), "holm"] and not table.loc[("ls", "ce"), "holm"]
    assert table.loc[("kd", "ls"), "mean_diff"] == pytest.approx(3.0 - 0.1667, abs=1e-3)


def test_the_verdict_states_the_paired_difference_not_the_gap_of_the_means():
    # kd has a third seed that ce lacks: the means differ by more than the paired difference
    records = [rec("ce", 0, 0.70), rec("ce", 1, 0.72), rec("kd", 0, 0.71), rec("kd", 1, 0.73), rec("kd", 2, 0.80)]
    sentence = kdlib.report.verdict(records, "kd")
    assert "1.00 points above ce" in sentence  # paired over seeds 0 and 1; the means are 3.33 apart


def test_tables_are_shown_without_empty_columns_and_with_readable_p_values():
    frame = pd.DataFrame({"method": ["teacher", "ce"], "mean": [83.123, 62.456], "reference": [float("nan")] * 2,
                          "tutorial": ["", ""], "seconds": [0.0, 33.31], "p_value": [0.00004, 0.23456],
                          "p_holm": [0.0123, float("nan")], "excludes_zero": [True, False]})
    shown = results.shown(frame)
    assert list(shown.columns) == ["method", "mean", "seconds", "p_value", "p_holm", "excludes_zero_uncorrected"]
    assert list(shown["p_value"]) == ["< 0.001", "0.235"] and list(shown["p_holm"]) == ["0.0123", ""]
    assert shown["seconds"].isna()[0] and shown["mean"][0] == 83.12


def test_the_teachers_figure_names_each_teacher_once_and_fills_only_gains_that_hold():
    points = pd.DataFrame({"method": ["kd_untrained", "kd_epoch005", "kd"], "teacher_accuracy": [10.0, 63.6, 85.3],
                           "mean_diff": [1.2, 1.3, 2.8], "ci95_low": [0.1, 0.4, 1.7], "ci95_high": [2.3, 2.2, 3.9],
                           "holm": [True, True, False], "test_agreement": [9.9, 80.3, 68.3]})
    fig = plots.gain_by_teacher(points)
    gain, agreement = fig.axes
    assert [t.get_text() for t in fig.legends[0].get_texts()] == [plots.label(m).replace("\n", " ") for m in points["method"]]
    assert not gain.texts and not agreement.texts  # no labels beside the points to overlap
    faces = [line.get_markerfacecolor() for line in agreement.get_lines()]
    assert [face != "white" for face in faces] == [True, True, False]
