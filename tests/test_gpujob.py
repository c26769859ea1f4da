"""kdlib.gpujob at smoke scale: every stage runs, a stage cut by the budget runs on the next
call while finished stages are skipped, and publish writes into a copy of the repository's layout."""

import csv
import json
import subprocess
import sys

import pytest

from kdlib import gpujob, profiles, results

pytestmark = pytest.mark.notebooks


def test_estimates_come_from_the_bench_when_there_is_one_else_from_the_h100_run():
    from_h100 = gpujob.estimate("full", None)
    fast = {"workloads": {"teacher CE": {"kdlib_s": 1.0, "targets_s": 0.0},
                          "student CE": {"kdlib_s": 0.1, "targets_s": 0.0},
                          "student KD": {"kdlib_s": 0.1, "targets_s": 3.0}}}
    runs = gpujob.student_runs("full")
    teacher_epochs, student_epochs = gpujob.epochs("full")
    assert gpujob.estimate("full", fast) == pytest.approx(60 + teacher_epochs * 1.0 + runs * student_epochs * (0.1 + 0.1 + 0.1) / 2)
    assert from_h100 > gpujob.estimate("full", fast)
    full, reference = gpujob.estimate("full", fast), gpujob.estimate("reference", fast)
    assert reference < full
    budget = (150 + full + reference / 2) / 60  # bench, full, and not the reference after it
    assert gpujob.plan(budget, fast, set(), smoke=False) == ["bench", "full", "publish"]
    budget = (150 + (full + reference) / 2) / 60  # the full run does not fit, the reference does
    assert gpujob.plan(budget, fast, set(), smoke=False) == ["bench", "reference", "publish"]


def test_a_job_run_again_after_a_cut_plans_with_the_bench_it_made(tmp_path, monkeypatch):
    out = tmp_path / "job"
    (out / "bench").mkdir(parents=True)
    fast = {"workloads": {"teacher CE": {"kdlib_s": 1.0, "targets_s": 0.0},
                          "student CE": {"kdlib_s": 0.1, "targets_s": 0.0}}}
    (out / "bench" / "bench.json").write_text(json.dumps(fast))
    (out / "bench" / ".done").write_text("150 s\n")
    minutes = (gpujob.estimate("full", fast) + 30) / 60
    assert gpujob.estimate("full", None) > minutes * 60  # by the H100's figures it would not fit
    ran = []
    monkeypatch.setattr("torch.cuda.is_available", lambda: True)  # as on the GPU machine
    monkeypatch.setattr(gpujob, "run_stage", lambda stage, out, args: (out / stage).mkdir(exist_ok=True) or ran.append(stage))
    gpujob.main([str(out), "--minutes", f"{minutes:.3f}"])
    assert ran == ["full", "publish"]


def test_after_its_bench_the_job_plans_again_with_this_gpus_seconds(tmp_path, monkeypatch):
    # By the H100's figures the full stage does not fit the minutes; by the bench just made here it does.
    out = tmp_path / "job"
    fast = {"workloads": {"teacher CE": {"kdlib_s": 1.0, "targets_s": 0.0},
                          "student CE": {"kdlib_s": 0.1, "targets_s": 0.0}}}
    minutes = (gpujob.estimate("full", fast) + 30) / 60  # the bench's own 150 s are an estimate: here it takes none
    assert gpujob.estimate("full", None) > minutes * 60 > gpujob.estimate("full", fast) + 30 - 1
    assert gpujob.estimate("reference", fast) > 30  # after full, the reference does not fit
    ran = []

    def stage(name, out, args):
        (out / name).mkdir(parents=True, exist_ok=True)
        if name == "bench":
            (out / "bench" / "bench.json").write_text(json.dumps(fast))
        ran.append(name)
    monkeypatch.setattr("torch.cuda.is_available", lambda: True)  # as on the GPU machine
    monkeypatch.setattr(gpujob, "run_stage", stage)
    gpujob.main([str(out), "--minutes", f"{minutes:.3f}"])
    assert ran == ["bench", "full", "publish"]


def test_a_job_brought_back_from_the_gpu_publishes_here_without_one(tmp_path, monkeypatch, capsys):
    out = tmp_path / "job"
    for name in ("bench", "full"):
        (out / name).mkdir(parents=True)
        (out / name / ".done").write_text("1 s\n")
    ran = []
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    monkeypatch.setattr(gpujob, "run_stage", lambda stage, out, args: ran.append(stage))
    gpujob.main([str(out)])
    assert ran == ["publish"] and "left for a GPU: reference" in capsys.readouterr().out


def test_the_gpu_job_runs_every_stage_resumes_and_publishes(tmp_path):
    repository = tmp_path / "repository"
    out = tmp_path / "job"
    command = [sys.executable, "-m", "kdlib.gpujob", str(out), "--smoke", "--repository", str(repository)]
    first = subprocess.run(command + ["--minutes", "4"], capture_output=True, text=True)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    assert "reference  estimate     180 s  does not fit: skipped" in first.stdout
    summary = json.loads((out / "summary.json").read_text())
    assert summary["reference"] == "not run" and summary["full"].endswith(" s")
    assert not (repository / "figures").exists()  # the course's figures are never replaced by a GPU run's
    assert [p.name.split("-gpu-")[0] for p in (repository / "published").iterdir()] == ["full"]
    assert (next((repository / "published").iterdir()) / "runs.csv").is_file()
    assert json.loads((out / "bench" / "bench.json").read_text())["together"] == 3
    assert not [p for p in (out / "full" / "checkpoints").rglob("*.pt") if p.name != "teacher.pt"]

    second = subprocess.run(command, capture_output=True, text=True)  # the next call: what is left
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert "done already: ['bench', 'full']" in second.stdout
    summary = json.loads((out / "summary.json").read_text())
    assert summary["bench"] == "done earlier" and summary["reference"].endswith(" s")
    rows = list(csv.DictReader(open(next((repository / "published").glob("reference-gpu-*")) / "results.csv")))
    assert rows[0]["method"] == "teacher" and {r["method"] for r in rows} >= {"ce", "kd", "kd_untrained"}
    assert sorted(p.name.split("-gpu-")[0] for p in (repository / "published").iterdir()) == ["full", "reference"]
    # Each stage ran its profile's shape (07 included: it needs a validation split or says it has none),
    # and trained exactly the runs its estimate counts.
    for stage in ("full", "reference"):
        params = profiles.at_smoke_scale(stage)
        trained = [r for r in results.load(out / stage / "results") + results.load(out / stage / "results" / "sweeps")
                   if r["method"] != "teacher"]
        assert len(trained) == gpujob.student_runs(stage, smoke=True) == len(params["seeds"]) * (
            len(gpujob.METHODS) - 1) + profiles.sweep_runs(params)  # kd_small_teacher's teacher is CIFAR-10's
        assert {r["config"]["family"] for r in trained} == {profiles.PROFILES[stage]["family"]}
        assert (out / stage / "07_sweeps.ipynb").is_file()
    assert "no validation split in this profile" in (out / "reference" / "07_sweeps.ipynb").read_text()
    reference = profiles.PROFILES["reference"]  # another family: the small teacher is the tutorial family's
    assert gpujob.student_runs("reference") == 3 * (len(gpujob.METHODS) - 1) + profiles.sweep_runs(reference)


def test_a_run_that_took_the_published_teacher_publishes_no_teacher(tmp_path, monkeypatch):
    # The full profile takes weights/teacher-tutorial.pt: measured again in bf16 it can read a hair
    # above its float16 figure, and must not be written back over itself as a "better" teacher.
    from kdlib import published
    written = []
    monkeypatch.setattr(published, "write_teacher", lambda checkpoint, record, splits, out, **kw: written.append(out))
    run_dir, repository = tmp_path / "reference", tmp_path / "repository"
    (run_dir / "results").mkdir(parents=True)
    record = {"method": "teacher", "seed": 0, "time": "1", "config": {"family": "reference"},
              "metrics": {"accuracy": 0.99}, "n_test": 10000, "published": "../weights/teacher-reference.pt"}
    (run_dir / "results" / "teacher.json").write_text(json.dumps(record))
    gpujob._publish_teacher_if_better(run_dir, "reference", repository, "synthetic")
    assert written == []
    del record["published"]  # a teacher the run trained itself, and none published yet for its family
    (run_dir / "results" / "teacher.json").write_text(json.dumps(record))
    gpujob._publish_teacher_if_better(run_dir, "reference", repository, "synthetic")
    assert written == [repository / "weights" / "teacher-reference.pt"]


@pytest.mark.parametrize("args, message", [(["--minutes", "-5"], "--minutes -5: give the minutes"),
                                           (["--data", "/no/such/copy.tar.gz"], "no such file or folder")])
def test_a_job_with_bad_arguments_is_refused_before_any_estimate(tmp_path, capsys, monkeypatch, args, message):
    monkeypatch.setattr("torch.cuda.is_available", lambda: True)  # as on the GPU machine
    with pytest.raises(SystemExit):
        gpujob.main([str(tmp_path / "job"), *args])
    said = capsys.readouterr()
    assert message in said.err and "estimate" not in said.out and not (tmp_path / "job").exists()


def test_without_a_gpu_the_job_says_how_to_run_the_profiles_on_the_cpu(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    with pytest.raises(SystemExit):
        gpujob.main([str(tmp_path / "job")])
    assert "no GPU here" in capsys.readouterr().err and not (tmp_path / "job").exists()
