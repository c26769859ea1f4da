"""kdlib.experiment: what the notebooks call to train methods over seeds and sweep a knob."""

from dataclasses import replace

import dataclasses

import pytest
import torch

import kdlib
from kdlib import experiment, results


def test_sweep_trains_once_per_value_and_seed_and_records_the_value(synthetic, tmp_cache, tmp_path):
    cfg = kdlib.Config(epochs=1, batch_size=64, views=2, progress=False)
    teacher = kdlib.build("DeepNN", synthetic.num_classes, seed=1)
    runs = experiment.sweep("kd", "temperature", [1.0, 8.0], synthetic, cfg, [0, 1], teacher,
                            tmp_path / "sweeps")
    assert list(runs.columns) == ["temperature", "seed", "val_accuracy", "accuracy", "device"]
    assert runs["device"].str.startswith("CPU (").all()  # where each ran: 07's beta = 0 check reads it
    assert sorted(zip(runs["temperature"], runs["seed"])) == [(1.0, 0), (1.0, 1), (8.0, 0), (8.0, 1)]
    records = results.load(tmp_path / "sweeps")
    assert sorted((r["sweep"]["value"], r["config"]["temperature"]) for r in records) == \
        [(1.0, 1.0), (1.0, 1.0), (8.0, 8.0), (8.0, 8.0)]
    # The knob changes the result: the same seed at another temperature trains differently.
    by_value = runs.set_index(["temperature", "seed"])["accuracy"]
    histories = {(r["sweep"]["value"], r["seed"]): r["history"][0]["loss"] for r in records}
    assert histories[(1.0, 0)] != histories[(8.0, 0)]
    assert by_value.between(0, 100).all()


def test_sweep_refuses_an_unknown_knob(synthetic):
    with pytest.raises(ValueError, match="not a kdlib.Config field"):
        experiment.sweep("kd", "temprature", [1.0], synthetic, kdlib.Config(), [0], None)


def test_reuse_takes_finished_runs_and_retrains_what_changed(synthetic, tmp_path, monkeypatch):
    cfg = kdlib.Config(epochs=1, batch_size=64, progress=False)
    folders = dict(results_dir=tmp_path / "results", checkpoint_dir=tmp_path / "checkpoints")
    first = experiment.train_method("ce", synthetic, cfg, [0, 1], **folders, reuse=True)

    trained = []
    real_fit = experiment.fit_together
    monkeypatch.setattr(experiment, "fit_together", lambda *a, **k: trained.extend(a[5]) or real_fit(*a, **k))
    again = experiment.train_method("ce", synthetic, cfg, [0, 1, 2], **folders, reuse=True)
    assert trained == [2]  # seeds 0 and 1 were finished with these settings
    assert [r.accuracy for r in again[:2]] == [r.accuracy for r in first]
    assert again[0].history == first[0].history

    experiment.train_method("ce", synthetic, kdlib.Config(epochs=2, batch_size=64, progress=False),
                            [0], **folders, reuse=True)
    assert trained == [2, 0]  # another epoch count is another run
    experiment.train_method("ce", synthetic.subset(n_train=300), cfg, [1], **folders, reuse=True)
    assert trained == [2, 0, 1]  # and so is another training set


def test_reuse_needs_the_record_as_well_as_the_checkpoint(synthetic, tmp_path):
    cfg = kdlib.Config(epochs=1, batch_size=64, progress=False)
    experiment.train_method("ce", synthetic, cfg, [0], checkpoint_dir=tmp_path / "ck",
                            results_dir=tmp_path / "results")
    for record in (tmp_path / "results").glob("*.json"):
        record.unlink()  # e.g. a run killed between writing the checkpoint and the record
    assert experiment._finished_run("ce", "LightNN", synthetic, cfg, tmp_path / "results",
                                    tmp_path / "ck" / "student-ce-seed0.pt") is None


def test_teacher_is_saved_where_the_students_load_it(synthetic, tmp_path):
    cfg = kdlib.Config(epochs=1, batch_size=64, progress=False)
    run = experiment.train_teacher(synthetic, cfg, tmp_path / "results", tmp_path / "ck", profile="test")
    teacher = experiment.load_teacher(tmp_path / "ck", synthetic)
    assert type(teacher).__name__ == "DeepNN"
    assert [r["method"] for r in results.load(tmp_path / "results")] == ["teacher"]
    again = experiment.train_teacher(synthetic, cfg, tmp_path / "results", tmp_path / "ck", reuse=True)
    assert again.accuracy == run.accuracy and again.history == run.history


def test_students_of_another_teacher_are_not_reused(synthetic, tmp_path):
    cfg = kdlib.Config(epochs=1, batch_size=64, views=1, progress=False)
    folders = dict(results_dir=tmp_path / "results", checkpoint_dir=tmp_path / "checkpoints")
    old, new = (kdlib.build("DeepNN", synthetic.num_classes, seed=s) for s in (1, 2))
    experiment.train_method("kd", synthetic, cfg, [0], old, **folders, reuse=True)
    path = tmp_path / "checkpoints" / "student-kd-seed0.pt"
    assert experiment._finished_run("kd", "LightNN", synthetic, cfg, folders["results_dir"], path, old)
    assert experiment._finished_run("kd", "LightNN", synthetic, cfg, folders["results_dir"], path, new) is None


def test_sweeps_resume_without_retraining_or_duplicate_records(synthetic, tmp_cache, tmp_path, monkeypatch):
    cfg = kdlib.Config(epochs=1, batch_size=64, views=1, progress=False)
    teacher = kdlib.build("DeepNN", synthetic.num_classes, seed=1)
    folders = dict(results_dir=tmp_path / "sweeps", checkpoint_dir=tmp_path / "ck", reuse=True)
    first = experiment.sweep("kd", "temperature", [1.0, 8.0], synthetic, cfg, [0], teacher, **folders)
    monkeypatch.setattr(experiment, "fit_together", lambda *a, **k: pytest.fail("retrained a finished sweep run"))
    again = experiment.sweep("kd", "temperature", [1.0, 8.0], synthetic, cfg, [0], teacher, **folders)
    assert again.equals(first)
    records = results.load(tmp_path / "sweeps")
    assert len(records) == 2 and all(r["data"] == synthetic.fingerprint and r["teacher"] for r in records)


def test_reuse_needs_the_same_code_and_compares_the_device_actually_used(synthetic, tmp_path, monkeypatch):
    cfg = kdlib.Config(epochs=1, batch_size=64, progress=False, device="auto")
    folders = dict(results_dir=tmp_path / "results", checkpoint_dir=tmp_path / "ck", reuse=True)
    experiment.train_method("ce", synthetic, cfg, [0], **folders)
    trained = []
    real_fit = experiment.fit_together
    monkeypatch.setattr(experiment, "fit_together", lambda *a, **k: trained.append(1) or real_fit(*a, **k))
    experiment.train_method("ce", synthetic, dataclasses.replace(cfg, device="cpu"), [0], **folders)
    assert trained == []  # "auto" is the CPU here: the same run
    monkeypatch.setattr(kdlib.identity, "ENGINE_CODE", "a-fixed-bug")
    experiment.train_method("ce", synthetic, cfg, [0], **folders)
    assert trained == [1]  # other code: trained again


def test_the_ce_baseline_measures_agreement_with_the_teacher(synthetic, tmp_path):
    cfg = kdlib.Config(epochs=1, batch_size=64, progress=False)
    teacher = kdlib.build("DeepNN", synthetic.num_classes, seed=1)
    (run,) = experiment.train_method("ce", synthetic, cfg, [0], teacher, tmp_path / "results")
    assert 0 <= run.metrics["teacher_agreement"] <= 1
    assert results.table(results.load(tmp_path / "results"))["teacher_agreement"].notna().all()


@pytest.mark.parametrize("bad, message", [
    ({"seeds": 3}, "seeds=3 \\(int\\): expected a non-empty list of integers"),
    ({"seeds": []}, "seeds=\\[\\]"),
    ({"seeds": [0, 0]}, "listed twice"),
    ({"teacher_epochs": "abc"}, "teacher_epochs='abc'"),
    ({"betas": [-1.0]}, "betas=\\[-1.0\\]"),
    ({"teacher_snapshots": 5}, "teacher_snapshots=5 \\(int\\): expected a list of epochs"),
])
def test_notebook_parameters_are_checked_before_any_work(bad, message):
    with pytest.raises(kdlib.checks.ParameterError, match=message):
        experiment.config({"seeds": [0], "teacher_epochs": 2, **bad})


def test_a_setting_given_by_a_name_that_is_not_one_is_refused():
    with pytest.raises(kdlib.checks.ParameterError, match="Not a setting: temprature"):
        experiment.config({"seeds": [0]}, temprature=2.0)
    assert experiment.config({"seeds": [0]}, temperature=2.0).temperature == 2.0


def test_kd_from_an_untrained_teacher_is_trained_by_its_name_alone(synthetic, tmp_cache, tmp_path, monkeypatch):
    """The control is a declaration: given the run's trained teacher, "kd_untrained" still
    distils from an untrained one, and its record says so."""
    cfg = kdlib.Config(epochs=1, batch_size=64, views=1, progress=False)
    folders = dict(results_dir=tmp_path / "results", checkpoint_dir=tmp_path / "ck")
    trained = kdlib.build("DeepNN", synthetic.num_classes, seed=5).eval()
    experiment.train_method("kd_untrained", synthetic, cfg, [0], trained, **folders)
    (record,) = results.load(tmp_path / "results")
    untrained = experiment.untrained_teacher(synthetic, cfg)
    assert record["teacher"] == kdlib.files.weights_digest(untrained) != kdlib.files.weights_digest(trained)
    assert (record["method"], record["recipe"], record["control"]) == ("kd_untrained", "kd_untrained",
                                                                       "an untrained teacher")
    assert (tmp_path / "ck" / "student-kd_untrained-seed0.pt").is_file()
    monkeypatch.setattr(experiment, "fit_together", lambda *a, **k: pytest.fail("retrained the control"))
    experiment.train_method("kd_untrained", synthetic, cfg, [0], trained, **folders, reuse=True)
    wanted = kdlib.identity.of_run(replace(cfg, seed=0), synthetic, untrained, "kd_untrained")
    assert kdlib.identity.matches(record, wanted)  # its identity names the untrained teacher


def test_seeds_trained_together_keep_a_record_checkpoint_and_share_of_time_each(synthetic, tmp_path, monkeypatch):
    cfg = kdlib.Config(epochs=1, batch_size=64, progress=False)
    folders = dict(results_dir=tmp_path / "results", checkpoint_dir=tmp_path / "ck")
    groups = []
    real_fit = experiment.fit_together
    monkeypatch.setattr(experiment, "fit_together", lambda *a, **k: groups.append(a[5]) or real_fit(*a, **k))
    runs = experiment.train_method("ce", synthetic, cfg, [0, 1, 2], **folders, together=2)
    assert groups == [[0, 1], [2]]
    assert [r.config.seed for r in runs] == [0, 1, 2] and [r.together for r in runs] == [2, 2, 1]
    records = results.load(tmp_path / "results")
    assert sorted((r["seed"], r["together"]) for r in records) == [(0, 2), (1, 2), (2, 1)]
    assert all((tmp_path / "ck" / f"student-ce-seed{s}.pt").is_file() for s in (0, 1, 2))
    # The same seeds in the same groups: finished runs, reused, not retrained.
    again = experiment.train_method("ce", synthetic, cfg, [0, 1, 2], **folders, reuse=True, together=2)
    assert groups == [[0, 1], [2]] and [r.accuracy for r in again] == [r.accuracy for r in runs]
    table = results.runs(results.load(tmp_path / "results"))
    assert list(table.columns) == results.RUN_COLUMNS and len(table) == 3
    assert table["seconds"].sum() == pytest.approx(sum(r.seconds for r in runs), abs=0.2)
    # Seeds 1 and 2 as one group are other runs (one stream of dropout masks for both): trained.
    experiment.train_method("ce", synthetic, cfg, [1, 2], **folders, reuse=True, together=2)
    assert groups == [[0, 1], [2], [1, 2]]
    assert [r["group"] for r in results.load(tmp_path / "results")][-2:] == [[1, 2], [1, 2]]


def test_a_sweep_chooses_on_validation_and_never_reads_the_test_set(synthetic, tmp_cache, tmp_path):
    splits = synthetic.subset(n_val=100)
    scrambled = replace(splits, y_test=splits.y_test[torch.randperm(len(splits.y_test))])  # another test set
    cfg = kdlib.Config(epochs=1, batch_size=100, views=2, amp="off", progress=False)
    teacher = kdlib.build("DeepNN", seed=1).eval()
    chosen, frames = [], []
    for data in (splits, scrambled):
        runs = experiment.sweep("kd", "temperature", [1.0, 4.0], data, cfg, [0], teacher)
        frames.append(runs)
        chosen.append(experiment.best(runs, "temperature"))
    assert frames[0]["val_accuracy"].tolist() == frames[1]["val_accuracy"].tolist()
    assert chosen[0] == chosen[1]
    assert chosen[0] == frames[0].set_index("temperature")["val_accuracy"].idxmax()
    with pytest.raises(ValueError, match="n_val"):
        experiment.best(frames[0].assign(val_accuracy=float("nan")), "temperature")


def test_a_teacher_left_in_train_mode_still_gives_eval_mode_targets(synthetic, tmp_cache):
    teacher = kdlib.build("DeepNN", seed=1)
    cfg = kdlib.Config(views=2, progress=False, amp="off")
    in_train_mode = kdlib.teacher_targets(teacher.train(), synthetic, cfg, cache=False)
    in_eval_mode = kdlib.teacher_targets(teacher.eval(), synthetic, cfg, cache=False)
    assert torch.equal(in_train_mode.logits, in_eval_mode.logits)  # dropout off: no random masks


def test_a_sweep_point_that_is_a_main_run_is_taken_from_the_main_runs(synthetic, tmp_cache, tmp_path, monkeypatch):
    cfg = kdlib.Config(epochs=1, batch_size=100, views=2, amp="off", progress=False)
    teacher = kdlib.build("DeepNN", seed=1).eval()
    main = (tmp_path / "results", tmp_path / "checkpoints")
    kd, = experiment.train_method("kd", synthetic, cfg, [0], teacher, *main)
    trained = []
    real_fit = experiment.fit_together
    monkeypatch.setattr(experiment, "fit_together", lambda *a, **k: trained.append(a[4].temperature) or real_fit(*a, **k))
    runs = experiment.sweep("kd", "temperature", [cfg.temperature, 8.0], synthetic, cfg, [0], teacher,
                            tmp_path / "sweeps", tmp_path / "sweep-checkpoints", main=main)
    assert trained == [8.0]  # T = 4 is the main run
    assert runs.set_index("temperature").loc[cfg.temperature, "accuracy"] == 100 * kd.accuracy
    assert runs.set_index("temperature").loc[cfg.temperature, "device"] == kd.device != ""  # the main run's own


def test_a_teacher_keeps_its_snapshots_and_the_images_it_trained_on(tmp_path):
    splits = kdlib.data.synthetic(n_train=300, n_test=100).subset(n_val=60)
    cfg = kdlib.Config(epochs=3, batch_size=64, progress=False)
    run = experiment.train_teacher(splits, cfg, tmp_path / "results", tmp_path / "ck", snapshots=[1, 2])
    snaps = sorted(p.name for p in (tmp_path / "ck").glob("teacher-epoch*.pt"))
    assert snaps == ["teacher-epoch001.pt", "teacher-epoch002.pt"]
    first = kdlib.load_checkpoint(tmp_path / "ck" / snaps[0])
    assert first.checkpoint_meta["epoch"] == 1 and len(first.checkpoint_meta["history"]) == 1
    assert kdlib.files.weights_digest(first) != kdlib.files.weights_digest(run.model)
    record = results.load(tmp_path / "results")[-1]
    seen = kdlib.data.mask_indices(record["images"])
    assert int(seen.sum()) == 240 and not seen[splits.val_index].any()


@pytest.mark.parametrize("family", ["tutorial", "reference"])  # the reference's models are weight-normalized:
def test_seeds_side_by_side_equal_seeds_one_after_another(synthetic, tmp_cache, tmp_path, family):  # unpicklable modules
    """Worker processes of one thread each give exactly the runs that one thread gives one seed
    after another (amp off: a spawned worker does not see conftest's float32 patch)."""
    teacher = kdlib.build(kdlib.models.teacher_architecture(family), synthetic.num_classes, seed=4).eval()
    cfg = kdlib.Config(family=family, epochs=2, batch_size=64, views=2, amp="off", progress=False, workers=1)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        apart = experiment.train_method("kd", synthetic, cfg, [0, 1], teacher, tmp_path / "a" / "results",
                                        tmp_path / "a" / "ck")
    finally:
        torch.set_num_threads(threads)
    side = experiment.train_method("kd", synthetic, dataclasses.replace(cfg, workers=2), [0, 1], teacher,
                                   tmp_path / "b" / "results", tmp_path / "b" / "ck")
    for one, other in zip(apart, side):
        assert one.history == [{**row, "seconds": one_row["seconds"]} for row, one_row in zip(other.history, one.history)]
        for a, b in zip(one.model.state_dict().values(), other.model.state_dict().values()):
            assert torch.equal(a, b)
        assert one.metrics == other.metrics  # the workers read the teacher's outputs for them from the cache
    assert len(results.load(tmp_path / "b" / "results")) == 2  # each worker kept its record
    # and a rerun takes them from the folder, as any finished run
    again = experiment.train_method("kd", synthetic, dataclasses.replace(cfg, workers=2), [0, 1], teacher,
                                    tmp_path / "b" / "results", tmp_path / "b" / "ck", reuse=True)
    assert [r.accuracy for r in again] == [r.accuracy for r in side]


def test_the_teachers_outputs_for_the_metrics_are_computed_before_the_workers_start(synthetic, tmp_path, monkeypatch):
    """Computed once by the parent, not once by each worker at the same time."""
    teacher = kdlib.build("DeepNN", synthetic.num_classes, seed=4).eval()
    order = []
    monkeypatch.setattr(experiment, "teacher_outputs", lambda model, *a: order.append(("outputs", model)))

    def side_by_side(workers, method, *a):
        order.append(("workers", workers))
        raise InterruptedError  # enough: what ran before the workers is known
    monkeypatch.setattr(experiment, "_train_side_by_side", side_by_side)
    with pytest.raises(InterruptedError):
        experiment.train_method("ce", synthetic, kdlib.Config(epochs=1, progress=False, workers=2), [0, 1], teacher,
                                tmp_path / "results", tmp_path / "ck")
    assert order == [("outputs", teacher), ("workers", 2)]


def test_a_published_teacher_declared_by_a_method_teaches_by_its_name_and_its_record_says_what_it_saw(
        tmp_cache, tmp_path, monkeypatch):
    """kd_small_teacher's teacher is a file under weights/: trained by name alone, the record says
    how many images that teacher trained on and whether they are exactly the students'."""
    splits = kdlib.data.synthetic(n_train=600, n_test=200).subset(n_train=300, n_val=100)
    cfg = kdlib.Config(epochs=1, batch_size=64, views=1, progress=False)
    experiment.train_teacher(splits, cfg, tmp_path / "t" / "results", tmp_path / "t" / "ck")
    (record,) = results.load(tmp_path / "t" / "results")
    published = kdlib.published.write_teacher(tmp_path / "t" / "ck" / "teacher.pt", record, splits, tmp_path / "small.pt")
    declared = kdlib.methods.DECLARED["kd_small_teacher"]
    monkeypatch.setitem(kdlib.methods.DECLARED, "kd_small_teacher", replace(declared, teacher=str(published)))
    run_teacher = kdlib.build("DeepNN", splits.num_classes, seed=5).eval()
    experiment.train_method("kd_small_teacher", splits, cfg, [0], run_teacher, tmp_path / "results", tmp_path / "ck")
    (student,) = results.load(tmp_path / "results")
    small = kdlib.published.load(published, splits)
    assert student["teacher"] == kdlib.files.weights_digest(small) != kdlib.files.weights_digest(run_teacher)
    assert (student["teacher_images"], student["teacher_saw_students_images"]) == (300, True)
    assert student["metrics"]["fidelity"]["test"]["agreement"] == pytest.approx(student["metrics"]["teacher_agreement"])


def test_rows_whose_published_teacher_does_not_exist_here_are_skipped_saying_so(capsys):
    """On the synthetic smoke data, and for the reference family, the published CIFAR-10 DeepNNs
    do not exist: the notebooks skip those rows."""
    assert experiment.runnable(["kd", "kd_small_teacher", "kd_untrained"], kdlib.data.synthetic(100, 50)) == [
        "kd", "kd_untrained"]
    cifar = type("Splits", (), {"source": "ImageFolder cifar10-jpeg.tar.gz"})()
    assert experiment.runnable(["kd_small_teacher"], cifar) == ["kd_small_teacher"]
    assert experiment.runnable(["kd_small_teacher", "kd_epoch005"], cifar, "reference") == []  # the tutorial family's
    assert "Not run here (ImageFolder cifar10-jpeg.tar.gz data, reference family): kd_small_teacher" in capsys.readouterr().out


def test_a_teachers_outputs_for_the_metrics_are_computed_once_per_series(synthetic, tmp_cache, monkeypatch):
    """What `evaluate` needs of a teacher (its predictions, its maps) is written to the cache by
    the first process that computes it: another process (its memory memo empty, as a
    side-by-side worker's) reads it and gets the same metrics; a damaged file is computed again."""
    teacher = kdlib.build("DeepNN", synthetic.num_classes, seed=1).eval()
    student = kdlib.build("LightNN", synthetic.num_classes, seed=2).eval()
    runs = []
    for name in ("predict", "_maps"):
        real = getattr(kdlib.evaluation, name)
        monkeypatch.setattr(kdlib.evaluation, name, lambda model, *a, real=real, **k:
                            (model is teacher and runs.append(1)) or real(model, *a, **k))
    kdlib.evaluation.teacher_outputs(teacher, synthetic)
    assert len(runs) == 3 and len(list((tmp_cache / "teacher-outputs").glob("*.pt"))) == 3  # train, test, maps
    first = kdlib.evaluation.evaluate(student, synthetic, teacher)
    monkeypatch.setattr(kdlib.evaluation, "_per_teacher", {})  # another process
    assert kdlib.evaluation.evaluate(student, synthetic, teacher) == first and len(runs) == 3
    for path in (tmp_cache / "teacher-outputs").glob("*.pt"):
        path.write_bytes(b"damaged")
    monkeypatch.setattr(kdlib.evaluation, "_per_teacher", {})
    with pytest.warns(UserWarning, match="could not be read"):
        assert kdlib.evaluation.evaluate(student, synthetic, teacher) == first
    assert len(runs) == 6


def test_fidelity_is_one_and_zero_for_the_teacher_itself_and_less_for_another_model(synthetic):
    teacher = kdlib.build("DeepNN", synthetic.num_classes, seed=1).eval()
    same = kdlib.evaluation.fidelity(teacher, teacher, synthetic)
    assert all(same[s]["agreement"] == 1.0 and abs(same[s]["kl"]) < 1e-5 for s in ("train", "test"))
    other = kdlib.evaluation.fidelity(kdlib.build("LightNN", synthetic.num_classes, seed=2).eval(), teacher, synthetic)
    assert other["test"]["agreement"] < 1.0 and other["test"]["kl"] > 0.0
