"""The published teacher (kdlib.published): written in float16 with its accuracy beside it,
loaded instead of training only where it fits the data, and its accuracy measured again."""

import pytest
import torch

import kdlib
from kdlib import experiment, published, results
from kdlib.checkpoints import CheckpointError

from conftest import REAL_DATA


@pytest.fixture(scope="module")
def trained(tmp_path_factory, synthetic):
    """A run folder whose teacher was trained by experiment.train_teacher, as 01 does."""
    run_dir = tmp_path_factory.mktemp("run")
    cfg = kdlib.Config(epochs=2, batch_size=64, progress=False)
    experiment.train_teacher(synthetic, cfg, run_dir / "results", run_dir / "checkpoints")
    return run_dir


def test_a_published_teacher_is_float16_and_carries_its_own_accuracy(trained, synthetic, tmp_path):
    (record,) = results.load(trained / "results")
    out = published.write_teacher(trained / "checkpoints" / "teacher.pt", record, synthetic, tmp_path / "t.pt",
                            command="python -m kdlib.series --profile smoke")
    payload = kdlib.files.load_tensors(out)
    assert {v.dtype for v in payload["state_dict"].values()} == {torch.float16}
    assert out.stat().st_size < 0.6 * (trained / "checkpoints" / "teacher.pt").stat().st_size
    teacher = published.load(out, synthetic)
    assert next(teacher.parameters()).dtype == torch.float32
    # The accuracy written beside it is that of the float16 weights, measured on this data.
    assert payload["meta"]["accuracy"] == kdlib.evaluate(teacher, synthetic)["accuracy"]
    assert abs(payload["meta"]["accuracy"] - record["metrics"]["accuracy"]) <= 0.01
    note = out.with_suffix(".md").read_text()
    assert f"{100 * payload['meta']['accuracy']:.2f}%" in note and "--profile smoke" in note


def test_a_published_teacher_refuses_other_classes_architectures_and_plain_checkpoints(trained, synthetic, tmp_path):
    (record,) = results.load(trained / "results")
    out = published.write_teacher(trained / "checkpoints" / "teacher.pt", record, synthetic, tmp_path / "t.pt")
    with pytest.raises(CheckpointError, match="for 10 classes, but the data has 4"):
        published.load(out, kdlib.data.synthetic(64, 32, num_classes=4))
    with pytest.raises(CheckpointError, match="holds a DeepNN, not the ReferenceDeepNN"):
        published.load(out, synthetic, family="reference")
    renamed = kdlib.data.synthetic(64, 32)
    renamed.classes = [f"kind {i}" for i in range(10)]
    with pytest.raises(CheckpointError, match="can only teach on the same classes"):
        published.load(out, renamed)
    with pytest.raises(CheckpointError, match="not a published teacher"):
        published.load(trained / "checkpoints" / "teacher.pt", synthetic)
    with pytest.raises(CheckpointError, match="No checkpoint at"):
        published.load(tmp_path / "absent.pt", synthetic)


def test_01_takes_a_published_teacher_instead_of_training(trained, synthetic, tmp_path, monkeypatch):
    (record,) = results.load(trained / "results")
    out = published.write_teacher(trained / "checkpoints" / "teacher.pt", record, synthetic, tmp_path / "t.pt")
    monkeypatch.setattr(experiment, "fit", lambda *a, **k: pytest.fail("trained a teacher it was given"))
    cfg = kdlib.Config(epochs=7, progress=False)  # this run's teacher_epochs: not the published recipe
    run = experiment.take_published_teacher(out, synthetic, cfg, tmp_path / "results", tmp_path / "ck")
    assert run.config.epochs == 2 and run.history == record["history"] and run.seconds == 0
    (adopted,) = results.load(tmp_path / "results")
    assert adopted["published"] == str(out) and adopted["weights"] == kdlib.files.weights_digest(run.model)
    # The student notebooks load it like a trained one.
    teacher = experiment.load_teacher(tmp_path / "ck", synthetic)
    assert kdlib.files.weights_digest(teacher) == adopted["weights"]
    # Asked for another published teacher later (an exercise), a notebook takes it instead of the
    # one the run folder already holds; asked for the same one, it keeps it.
    other = kdlib.build("DeepNN", synthetic.num_classes, seed=9)
    kdlib.checkpoints.save_checkpoint(other, tmp_path / "other.pt", method="teacher")
    out2 = published.write_teacher(tmp_path / "other.pt", record, synthetic, tmp_path / "t2.pt")
    same = experiment.teacher(synthetic, cfg, tmp_path / "ck", tmp_path / "results", out)
    assert kdlib.files.weights_digest(same) == adopted["weights"]
    import shutil  # a copy of the same file (a frozen worktree's) is the same teacher: no second record
    copy = shutil.copy(out, tmp_path / "copy.pt")
    assert kdlib.files.weights_digest(experiment.teacher(synthetic, cfg, tmp_path / "ck", tmp_path / "results", copy)) \
        == adopted["weights"] and len(results.load(tmp_path / "results")) == 1
    swapped = experiment.teacher(synthetic, cfg, tmp_path / "ck", tmp_path / "results", out2)
    assert kdlib.files.weights_digest(swapped) == kdlib.files.weights_digest(published.load(out2, synthetic))
    assert kdlib.files.weights_digest(experiment.load_teacher(tmp_path / "ck", synthetic)) != adopted["weights"]


def test_a_teacher_that_saw_the_validation_images_is_refused(tmp_path):
    whole = kdlib.data.synthetic(n_train=300, n_test=100)
    split = whole.subset(n_val=60)
    cfg = kdlib.Config(epochs=1, batch_size=64, progress=False)
    for name, trained_on in (("own", split), ("all", whole)):
        experiment.train_teacher(trained_on, cfg, tmp_path / name / "results", tmp_path / name / "ck")
        (record,) = results.load(tmp_path / name / "results")
        published.write_teacher(tmp_path / name / "ck" / "teacher.pt", record, trained_on, tmp_path / f"{name}.pt")
    published.load(tmp_path / "own.pt", split)  # never saw them: taken
    published.load(tmp_path / "all.pt", whole.subset())  # no validation split here: nothing to protect
    with pytest.raises(CheckpointError, match="trained on 60 of this run's 60 validation images"):
        published.load(tmp_path / "all.pt", split)


def test_the_series_checks_the_published_teacher_before_anything_runs(tmp_path):
    import subprocess
    import sys
    (tmp_path / "notes.pt").write_text("not a checkpoint")
    for teacher, said in (("absent.pt", "absent.pt: no such file"), ("notes.pt", "teacher_weights cannot be used")):
        done = subprocess.run([sys.executable, "-m", "kdlib.series", "--profile", "smoke", "--out",
                               str(tmp_path / "run"), "-p", "teacher_weights", str(tmp_path / teacher)],
                              capture_output=True, text=True)
        assert done.returncode != 0 and said in done.stderr and "Nothing was run" in done.stderr
        assert "Traceback" not in done.stderr and not (tmp_path / "run" / "01_teacher.ipynb").exists()


@pytest.mark.parametrize("family", ["tutorial", "reference"])
def test_the_published_teacher_still_has_its_accuracy(family):
    path = published.path(family)
    if not path.is_file():
        pytest.skip(f"no teacher published at {path} yet")
    if not REAL_DATA.is_file():
        pytest.skip(f"real images not found at {REAL_DATA}")
    teacher = kdlib.checkpoints.load_checkpoint(path)
    meta = teacher.checkpoint_meta
    splits = kdlib.load(REAL_DATA, normalization="imagenet" if family == "reference" else "data")
    measured = kdlib.evaluate(published.load(path, splits, family), splits, cfg=kdlib.Config(progress=False))
    assert measured["accuracy"] == pytest.approx(meta["accuracy"], abs=0.002)
    assert path.stat().st_size <= published.MAX_MB * 2 ** 20


def test_a_snapshot_is_published_with_its_own_history_and_the_split_it_never_saw(tmp_path):
    splits = kdlib.load("synthetic", n_val=100)
    experiment.train_teacher(splits, kdlib.Config(epochs=2, batch_size=64, progress=False), tmp_path / "results",
                             tmp_path / "checkpoints", snapshots=[1])
    published.main([str(tmp_path), "--snapshot", "1", "--out", str(tmp_path / "early.pt")])
    meta = kdlib.files.load_tensors(tmp_path / "early.pt")["meta"]
    assert meta["snapshot_epoch"] == 1 and len(meta["history"]) == 1 and meta["config"]["epochs"] == 2
    assert meta["mean"] == list(splits.mean)  # the statistics it trained with: without the validation images
    assert "snapshot after epoch 1 of 2 epochs" in (tmp_path / "early.md").read_text()
    published.load(tmp_path / "early.pt", splits)


def test_every_teacher_a_method_declares_loads_on_the_course_split_and_says_what_it_saw():
    """kd_small_teacher's teacher trained on exactly the course's 5,000 student images; the
    lineage's snapshots on the 45,000 outside the validation split. (Real data only.)"""
    if not REAL_DATA.is_file():
        pytest.skip(f"real images not found at {REAL_DATA}")
    course = kdlib.profiles.PROFILES["course"]
    splits = kdlib.load(REAL_DATA, n_train=course["n_train"], n_val=course["n_val"])
    declared = {m.name: m.teacher for m in kdlib.methods.DECLARED.values() if m.teacher.startswith("weights/")}
    assert set(declared) == {"kd_small_teacher", "kd_epoch005", "kd_epoch015", "kd_epoch030"}
    for method, file in declared.items():
        teacher = experiment.teacher_of(method, None, splits, kdlib.Config(progress=False))
        seen = experiment.teacher_images(teacher, splits)
        assert seen["teacher_images"] == (5000 if method == "kd_small_teacher" else 45000), method
        assert seen["teacher_saw_students_images"] == (method == "kd_small_teacher"), method
