"""kdlib.bench end to end on a small synthetic set: both sides run, every row is printed."""

from kdlib import bench


def test_bench_times_both_sides_and_prints_a_row_per_workload(capsys, tmp_cache):
    bench.main(["--data", "synthetic", "--subset", "256", "--workloads", "student CE", "student KD",
                "student grad AT"])
    out = capsys.readouterr().out
    rows = {line.split("|")[1].strip(): line.split("|")[2:-1] for line in out.splitlines()
            if line.startswith("| student")}
    assert list(rows) == ["student CE", "student KD", "student grad AT"]
    for cells in rows.values():
        seconds_a, seconds_b, speedup = float(cells[0]), float(cells[1]), cells[4].strip()
        assert seconds_a >= 0 and seconds_b >= 0 and speedup.endswith("x")  # printed to 0.1 s
        assert 0 <= float(cells[5].strip(" %")) <= 100 and 0 <= float(cells[6].strip(" %")) <= 100
    assert "teacher targets" in out and "a KD epoch costs" in out
