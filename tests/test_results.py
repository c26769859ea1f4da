import pytest

from kdlib import results


def rec(method, seed, acc):
    return {"method": method, "seed": seed, "metrics": {"accuracy": acc, "ece": 0.1},
            "seconds": 1.0, "config": {}, "history": []}


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
    assert table.loc["kd", "reference"] == 74.54


def test_paired_differences_pair_by_seed():
    records = [rec("ce", 0, 0.70), rec("ce", 1, 0.72), rec("kd", 0, 0.73), rec("kd", 1, 0.74)]
    diff = results.paired_differences(records).set_index("method")
    assert diff.loc["kd", "mean_diff"] == pytest.approx(2.5)
    assert diff.loc["kd", "std_diff"] == pytest.approx(0.70711, rel=1e-4)
    # Two seeds: t(0.975, 1) = 12.706, so the 95% interval is 2.5 ± 6.35 and includes zero.
    assert diff.loc["kd", "ci95_low"] == pytest.approx(2.5 - 12.706 * 0.70711 / 2 ** 0.5, rel=1e-3)
    assert not diff.loc["kd", "beyond_noise"]


def test_a_consistent_gain_over_three_seeds_is_beyond_noise():
    records = [rec("ce", s, a) for s, a in enumerate([0.70, 0.71, 0.72])]
    records += [rec("kd", s, a) for s, a in enumerate([0.73, 0.741, 0.749])]  # +3.0, +3.1, +2.9
    records += [rec("act_at", s, a) for s, a in enumerate([0.69, 0.72, 0.725])]  # -1, +1, +0.5
    diff = results.paired_differences(records).set_index("method")
    assert diff.loc["kd", "ci95_low"] == pytest.approx(3.0 - 4.303 * 0.1 / 3 ** 0.5, rel=1e-3)
    assert diff.loc["kd", "beyond_noise"]
    assert not diff.loc["act_at", "beyond_noise"]


def test_per_class_accuracy_averages_seeds_in_the_series_order():
    records = [rec(m, s, 0.5) for m, s in [("kd", 0), ("ce", 0), ("ce", 1)]]
    for r, per_class in zip(records, [[0.9, 0.1], [0.4, 0.6], [0.6, 0.8]]):
        r["metrics"]["per_class_accuracy"] = per_class
    result = results.per_class_accuracy(records)
    assert list(result) == ["ce", "kd"]
    assert result["ce"] == pytest.approx([0.5, 0.7]) and result["kd"] == pytest.approx([0.9, 0.1])
