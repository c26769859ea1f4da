import pytest
import torch

import kdlib
from kdlib import train
from kdlib.train import CheckpointError, Config


def test_ce_training_learns_the_synthetic_task(synthetic):
    cfg = Config(epochs=4, batch_size=64, augment=False, progress=False)
    run = kdlib.fit(kdlib.build("LightNN", seed=0), synthetic, "ce", cfg=cfg)
    assert run.accuracy > 0.6  # chance is 0.1
    assert [h["epoch"] for h in run.history] == [1, 2, 3, 4]
    assert run.history[-1]["loss"] < run.history[0]["loss"]
    assert {"seconds", "train_acc", "test_acc", "lr"} <= set(run.history[0])


def test_same_seed_same_result_on_cpu(synthetic, fast_cfg, tmp_cache):
    teacher = kdlib.build("DeepNN", seed=1)
    a = kdlib.fit(kdlib.build("LightNN", seed=0), synthetic, "kd", teacher, fast_cfg)
    b = kdlib.fit(kdlib.build("LightNN", seed=0), synthetic, "kd", teacher, fast_cfg)
    assert a.metrics == b.metrics
    assert [h["loss"] for h in a.history] == [h["loss"] for h in b.history]


@pytest.mark.parametrize("method", list(kdlib.METHODS))
def test_every_method_trains_and_reports_its_terms(method, synthetic, fast_cfg, tmp_cache):
    teacher = kdlib.build("DeepNN", seed=1)
    run = kdlib.fit(kdlib.build("LightNN", seed=0), synthetic, method, teacher, fast_cfg)
    metrics = run.metrics
    assert 0 <= metrics["accuracy"] <= 1 and len(metrics["per_class_accuracy"]) == 10
    assert 0 <= metrics["teacher_agreement"] <= 1 and 0 <= metrics["ece"] <= 1
    assert sum(map(sum, metrics["confusion"])) == len(synthetic.y_test)
    expected_terms = {"ce": {"ce"}, "kd": {"ce", "kd"}, "grad_at": {"ce", "at"},
                      "act_at": {"ce", "at"}, "kd_grad_at": {"ce", "kd", "at"}}[method]
    assert {k[5:] for k in run.history[0] if k.startswith("loss_")} == expected_terms


def test_cached_targets_are_the_teachers_outputs_on_exactly_that_view(synthetic, tmp_cache):
    teacher = kdlib.build("DeepNN", seed=1).eval()
    cfg = Config(views=3, progress=False)
    targets = train.teacher_targets(teacher, synthetic, cfg)
    assert targets.logits.shape == (600, 3, 10) and targets.grad[0].shape == (600, 3, 256)
    index, view = torch.tensor([5, 17]), torch.tensor([2, 0])
    x = train._batch(synthetic, index, targets.views[index, view], True, torch.device("cpu"))
    live = train.distillation_targets(teacher, x, synthetic.y_train[index], ("logits", "act", "grad"))
    gathered = targets.gather(index, view)
    torch.testing.assert_close(gathered["logits"], live["logits"], rtol=1e-4, atol=1e-4)
    for name in ("act", "grad"):
        for cached, fresh in zip(gathered[name], live[name]):
            torch.testing.assert_close(cached, fresh, rtol=0, atol=2e-3)  # stored as float16


def test_teacher_targets_are_cached_on_disk(synthetic, tmp_cache, monkeypatch):
    teacher = kdlib.build("DeepNN", seed=1)
    cfg = Config(views=2, progress=False)
    first = train.teacher_targets(teacher, synthetic, cfg)
    monkeypatch.setattr(train, "distillation_targets", lambda *a: pytest.fail("recomputed"))
    second = train.teacher_targets(teacher, synthetic, cfg)
    assert torch.equal(first.logits, second.logits)


def test_student_methods_need_a_teacher(synthetic, fast_cfg):
    with pytest.raises(ValueError, match="needs a teacher"):
        kdlib.fit(kdlib.LightNN(), synthetic, "kd", cfg=fast_cfg)


def test_invalid_config_names_the_field():
    with pytest.raises(ValueError, match="kd_weight=1.5"):
        Config(kd_weight=1.5)


def test_checkpoint_round_trip(tmp_path):
    model = kdlib.build("LightNN", num_classes=5, seed=0)
    path = kdlib.save_checkpoint(model, tmp_path / "m.pt", note="x")
    loaded = kdlib.load_checkpoint(path, architecture="LightNN", num_classes=5)
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), loaded.parameters()))
    assert loaded.checkpoint_meta == {"note": "x"}


@pytest.mark.parametrize("kwargs, message", [
    ({"architecture": "DeepNN"}, "holds a LightNN, not the DeepNN"),
    ({"num_classes": 10}, "for 5 classes, but the data has 10"),
])
def test_checkpoint_mismatch_is_explained(tmp_path, kwargs, message):
    path = kdlib.save_checkpoint(kdlib.build("LightNN", num_classes=5), tmp_path / "m.pt")
    with pytest.raises(CheckpointError, match=message):
        kdlib.load_checkpoint(path, **kwargs)


def test_missing_teacher_names_the_first_notebook(tmp_path, synthetic):
    with pytest.raises(CheckpointError, match="01_teacher.ipynb"):
        kdlib.experiment.load_teacher(tmp_path, synthetic)


def test_a_failed_save_keeps_the_earlier_checkpoint(tmp_path, monkeypatch):
    path = kdlib.save_checkpoint(kdlib.build("LightNN", seed=0), tmp_path / "m.pt")
    before = path.read_bytes()

    def crash(*args, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(KeyboardInterrupt):
        kdlib.save_checkpoint(kdlib.build("LightNN", seed=1), path)
    assert path.read_bytes() == before


def test_real_images_a_briefly_trained_student_beats_chance_widely(real_splits):
    splits = real_splits.subset(5000, 2000)
    cfg = Config(epochs=4, augment=False, progress=False)
    run = kdlib.fit(kdlib.build("LightNN", seed=0), splits, "ce", cfg=cfg)
    assert run.accuracy > 0.35, run.history  # chance is 0.10
