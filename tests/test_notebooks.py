"""The notebook series end to end in the smoke profile: under nbval, and through the
papermill runner. Each notebook really runs (synthetic data, one short epoch)."""

import csv
import json
import subprocess
import sys

import papermill
import pytest

from kdlib import series

pytestmark = pytest.mark.notebooks


def test_every_notebook_has_one_parameters_cell_and_a_colab_badge():
    for name in series.NOTEBOOKS:
        nb = json.loads((series.NOTEBOOK_DIR / name).read_text())
        tagged = [c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", [])]
        assert len(tagged) == 1, name
        assert "colab.research.google.com" in "".join(nb["cells"][0]["source"]), name


def test_notebooks_pass_nbval_in_the_smoke_profile(tmp_path):
    params = series.parameters("smoke", [], tmp_path / "run")
    prepared = []
    for name in series.NOTEBOOKS:  # in order: 01 makes the teacher the others load
        target = tmp_path / name
        papermill.execute_notebook(series.NOTEBOOK_DIR / name, target, parameters=series.declared(name, params),
                                   prepare_only=True, progress_bar=False)
        prepared.append(str(target))
    done = subprocess.run([sys.executable, "-m", "pytest", "--nbval-lax", "-p", "no:cacheprovider",
                           "-q", *prepared], cwd=series.NOTEBOOK_DIR, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-5000:] + done.stderr[-2000:]
    assert " passed" in done.stdout and "failed" not in done.stdout


def test_series_command_runs_every_notebook_and_prints_the_table(tmp_path):
    out = tmp_path / "run"
    done = subprocess.run([sys.executable, "-m", "kdlib.series", "--profile", "smoke", "--out", str(out)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    for name in series.NOTEBOOKS:
        assert (out / name).is_file(), name
    figures = {p.name for p in (out / "figures").glob("*.png")}
    assert {"01_teacher_curves.png", "03_temperature.png", "04_grad_at_maps.png",
            "05_act_at_maps.png", "06_accuracy.png", "06_per_class.png", "07_temperature.png",
            "07_kd_weight.png", "07_beta.png"} <= figures
    rows = list(csv.DictReader(open(out / "results.csv")))
    assert [r["method"] for r in rows] == ["teacher", "ce", "kd", "kd_untrained", "ls", "grad_at", "act_at", "kd_grad_at"]
    assert "| kd_grad_at |" in done.stdout
    # Every training run, sweeps included, once in runs.csv, with its seconds.
    every_run = list(csv.DictReader(open(out / "runs.csv")))
    recorded = list((out / "results").glob("*.json")) + list((out / "results" / "sweeps").glob("*.json"))
    assert len(every_run) == len(recorded) and every_run[0]["name"] == "teacher"
    assert {r["sweep"] for r in every_run} >= {"", "temperature=4", "beta=250"}
    assert all(float(r["seconds"]) > 0 for r in every_run) and "training runs" in done.stdout

    # An interrupted run resumes: finished runs with the same settings are taken, not retrained.
    again = subprocess.run([sys.executable, "-m", "kdlib.series", "--profile", "smoke", "--resume", str(out),
                            "--notebooks", "01_teacher.ipynb", "02_student_baseline.ipynb"],
                           capture_output=True, text=True)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    executed = (out / "02_student_baseline.ipynb").read_text()
    assert "ce seed 0: reusing the finished run" in executed
    assert len(list((out / "results").glob("ce-seed0-*.json"))) == 1  # no second record
