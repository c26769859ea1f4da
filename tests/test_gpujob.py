"""kdlib.gpujob at smoke scale: every stage runs, a stage cut by the budget runs on the next
call while finished stages are skipped, and publish writes into a copy of the repository's layout."""

import csv
import json
import subprocess
import sys

import pytest

from kdlib import gpujob

pytestmark = pytest.mark.notebooks


def test_estimates_come_from_the_bench_when_there_is_one_else_from_the_h100_run():
    from_h100 = gpujob.estimate("full", None)
    fast = {"workloads": {"teacher CE": {"kdlib_s": 1.0, "targets_s": 0.0},
                          "student CE": {"kdlib_s": 0.1, "targets_s": 0.0},
                          "student KD": {"kdlib_s": 0.1, "targets_s": 3.0}}}
    assert gpujob.STUDENT_RUNS["full"] == 3 * 9 + 9  # every method and control x 3 seeds, 9 sweep runs
    assert gpujob.estimate("full", fast) == pytest.approx(60 + 30 * 1.0 + 36 * 30 * (0.1 + 0.1 + 0.1) / 2)
    assert from_h100 > gpujob.estimate("full", fast)
    assert gpujob.plan(7, fast, set(), smoke=False) == ["bench", "full", "publish"]  # reference no longer fits
    assert gpujob.plan(5.5, fast, set(), smoke=False) == ["bench", "reference", "publish"]  # the full run would not


def test_the_gpu_job_runs_every_stage_resumes_and_publishes(tmp_path):
    repository = tmp_path / "repository"
    out = tmp_path / "job"
    command = [sys.executable, "-m", "kdlib.gpujob", str(out), "--smoke", "--repository", str(repository)]
    first = subprocess.run(command + ["--minutes", "4"], capture_output=True, text=True)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    assert "reference  estimate     180 s  does not fit: skipped" in first.stdout
    summary = json.loads((out / "summary.json").read_text())
    assert summary["reference"] == "not run" and summary["full"].endswith(" s")
    assert (repository / "figures" / "results.csv").is_file()
    assert not (repository / "figures" / "results_reference.csv").exists()
    assert json.loads((out / "bench" / "bench.json").read_text())["together"] == 3
    assert not [p for p in (out / "full" / "checkpoints").rglob("*.pt") if p.name != "teacher.pt"]

    second = subprocess.run(command, capture_output=True, text=True)  # the next call: what is left
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert "done already: ['bench', 'full']" in second.stdout
    summary = json.loads((out / "summary.json").read_text())
    assert summary["bench"] == "done earlier" and summary["reference"].endswith(" s")
    rows = list(csv.DictReader(open(repository / "figures" / "results_reference.csv")))
    assert rows[0]["method"] == "teacher" and {r["method"] for r in rows} >= {"ce", "kd", "kd_untrained"}
    assert sorted(p.name.split("-gpu-")[0] for p in (repository / "published").iterdir()) == ["full", "reference"]
