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
