from dataclasses import replace

import pytest
import torch

import kdlib
from kdlib.checkpoints import CheckpointError
from kdlib.config import Config


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


@pytest.mark.parametrize("method", list(kdlib.methods.DECLARED))
def test_every_method_trains_and_reports_its_terms(method, synthetic, fast_cfg, tmp_cache):
    teacher = kdlib.build("DeepNN", seed=1)
    run = kdlib.fit(kdlib.build("LightNN", seed=0), synthetic, method, teacher, fast_cfg)
    metrics = run.metrics
    assert 0 <= metrics["accuracy"] <= 1 and len(metrics["per_class_accuracy"]) == 10
    assert 0 <= metrics["teacher_agreement"] <= 1 and 0 <= metrics["ece"] <= 1
    assert sum(map(sum, metrics["confusion"])) == len(synthetic.y_test)
    expected_terms = {"ce": {"ce"}, "kd": {"ce", "kd"}, "kd_untrained": {"ce", "kd"}, "grad_at": {"ce", "at"},
                      "act_at": {"ce", "at"}, "kd_grad_at": {"ce", "kd", "at"}, "ls": {"ce"},
                      "cosine": {"ce", "feat"}, "regressor": {"ce", "feat"}, "ce_fresh": {"ce"}, "ce_mixup": {"ce"}}.get(
        method, {"ce", "kd"})  # every other one is KD from another teacher or with other settings
    assert method in ("ce", "ls", "ce_fresh", "ce_mixup") or kdlib.methods.get(method).needs
    assert {k[5:] for k in run.history[0] if k.startswith("loss_")} == expected_terms


def test_cached_features_are_the_teachers_hint_stage_on_exactly_that_view(synthetic, tmp_cache):
    teacher = kdlib.build("DeepNN", seed=1).eval()
    cfg = Config(views=3, progress=False, amp="off")
    targets = kdlib.targets.teacher_targets(teacher, synthetic, cfg, needs=("feat",))
    assert targets.feat.shape == (600, 3, 32 * 8 * 8) and targets.feat.dtype == torch.float16
    assert targets.logits is None and not targets.grad  # only what was asked for: the gradient pass is not run
    index, view = torch.tensor([3, 11]), torch.tensor([1, 2])
    x = kdlib.data.view_batch(synthetic, index, targets.views[index, view], True, torch.device("cpu"))
    _, stages = kdlib.forward_features(teacher, x)
    torch.testing.assert_close(targets.gather(index, view)["feat"], stages[1].flatten(1), rtol=1e-3, atol=1e-3)
    # Another request (the maps) does not take the feature-only cache for its own, nor the reverse.
    maps = kdlib.targets.teacher_targets(teacher, synthetic, cfg, needs=("act",))
    assert maps.feat is None and maps.act and kdlib.targets.teacher_targets(teacher, synthetic, cfg, needs=("feat",)).feat is not None


def test_cached_targets_are_the_teachers_outputs_on_exactly_that_view(synthetic, tmp_cache):
    teacher = kdlib.build("DeepNN", seed=1).eval()
    cfg = Config(views=3, progress=False)
    targets = kdlib.targets.teacher_targets(teacher, synthetic, cfg)
    assert targets.logits.shape == (600, 3, 10) and targets.grad[0].shape == (600, 3, 256)
    index, view = torch.tensor([5, 17]), torch.tensor([2, 0])
    x = kdlib.data.view_batch(synthetic, index, targets.views[index, view], True, torch.device("cpu"))
    live = kdlib.targets.distillation_targets(teacher, x, synthetic.y_train[index], ("logits", "act", "grad"))
    gathered = targets.gather(index, view)
    torch.testing.assert_close(gathered["logits"], live["logits"], rtol=1e-4, atol=1e-4)
    for name in ("act", "grad"):
        for cached, fresh in zip(gathered[name], live[name]):
            torch.testing.assert_close(cached, fresh, rtol=0, atol=2e-3)  # stored as float16


def test_teacher_targets_are_cached_on_disk(synthetic, tmp_cache, monkeypatch):
    teacher = kdlib.build("DeepNN", seed=1)
    cfg = Config(views=2, progress=False)
    computed = []
    real = kdlib.targets.distillation_targets
    # the name teacher_targets calls (kdlib.targets'), not a re-export: this patch can fire
    monkeypatch.setattr(kdlib.targets, "distillation_targets", lambda *a: computed.append(1) or real(*a))
    first = kdlib.targets.teacher_targets(teacher, synthetic, cfg)
    assert computed  # the first call computes them
    monkeypatch.setattr(kdlib.targets, "distillation_targets", lambda *a: pytest.fail("recomputed"))
    second = kdlib.targets.teacher_targets(teacher, synthetic, cfg)
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


# ----------------------------------------------------------------------------- the engine's wiring

def _probe(seen: list):
    """A KD recipe that records, at every step, the teacher's logits computed live on the very
    batch the student gets, next to the targets the engine handed it."""
    kd = kdlib.methods.get("kd")

    def loss(batch, cfg):
        with torch.no_grad():
            live = seen[0](batch.x.float()).float()
        seen.append((batch.targets["logits"].detach().clone(), live))
        return kd.loss(batch, cfg)
    return kdlib.methods.Method("probe", "probe", ("logits",), loss, kd.knobs)


@pytest.mark.parametrize("views, mixup", [(3, False), (0, False), (0, True), (3, True)],
                         ids=["fixed views", "live teacher", "live teacher on mixed images", "fixed mixed views"])
def test_every_step_gets_the_teachers_targets_for_exactly_its_own_view(synthetic, tmp_cache, views, mixup):
    teacher = kdlib.build("DeepNN", seed=1).eval()
    seen = [teacher]
    cfg = Config(epochs=1, batch_size=100, views=views, augment=True, mixup=mixup, progress=False)
    kdlib.fit(kdlib.build("LightNN", seed=0), synthetic.subset(300), _probe(seen), teacher, cfg)
    assert len(seen) == 1 + 3
    for given, live in seen[1:]:
        torch.testing.assert_close(given, live, rtol=1e-4, atol=1e-4)


def test_view_order_epoch_shows_every_image_its_next_view_each_epoch_with_its_own_targets(synthetic, tmp_cache):
    """kd_fresh's engine: with V = epochs fixed views, epoch e shows view e - 1 of every image, so
    no view is shown twice, and the cached targets are the teacher's on exactly that view."""
    splits = synthetic.subset(300)
    cfg = Config(epochs=3, batch_size=100, views=3, view_order="epoch", progress=False)
    table = kdlib.targets.make_views(len(splits.y_train), cfg)
    generators = [torch.Generator().manual_seed(0)]
    for epoch in (1, 2, 3, 4):
        _, choice, _, _ = kdlib.train._batch(splits, [torch.randperm(300)], generators,
                                             kdlib.train._TeacherSource(views=table), cfg, slice(0, 100),
                                             torch.device("cpu"), epoch)
        assert (choice == (epoch - 1) % 3).all()
    teacher = kdlib.build("DeepNN", seed=1).eval()
    seen = [teacher]
    kdlib.fit(kdlib.build("LightNN", seed=0), splits, _probe(seen), teacher, cfg)
    assert len(seen) == 1 + 3 * 3
    for given, live in seen[1:]:
        torch.testing.assert_close(given, live, rtol=1e-4, atol=1e-4)


def test_mixup_on_fixed_views_blends_the_same_partner_for_every_seed_and_teaches_the_blended_labels(synthetic):
    splits = synthetic.subset(300)
    cfg = Config(epochs=4, batch_size=100, views=4, view_order="epoch", mixup=True, progress=False)
    partners, weights = kdlib.targets.make_mixing(300, cfg)
    assert partners.shape == weights.shape == (300, 4) and ((weights > 0) & (weights < 1)).all()
    assert all(sorted(partners[:, k].tolist()) == list(range(300)) for k in range(4))  # a permutation per view
    source = kdlib.train._TeacherSource(views=kdlib.targets.make_views(300, cfg), mixing=(partners, weights))
    # two seeds, each in its own order: image i in view 1 is the same blend, whichever seed draws it
    orders = [torch.randperm(300, generator=torch.Generator().manual_seed(s)) for s in (0, 1)]
    index, choice, x, taught = kdlib.train._batch(splits, orders, [torch.Generator().manual_seed(s) for s in (0, 1)],
                                                  source, cfg, slice(0, 150), torch.device("cpu"), epoch=2)
    assert (choice == 1).all() and x.shape[0] == taught.shape[0] == 300
    blend = {}
    for i, image in enumerate(index.tolist()):
        if image in blend:
            torch.testing.assert_close(x[i], blend[image])
        blend[image] = x[i]
    assert len(blend) < 300  # the two seeds' halves overlap, so the check above ran
    i = 0
    p, w = partners[index[i], 1], weights[index[i], 1]
    own = kdlib.data.view_batch(splits, index[i:i + 1], source.views[index[i:i + 1], 1], True, "cpu")
    other = kdlib.data.view_batch(splits, p.view(1), source.views[p.view(1), 1], True, "cpu")
    torch.testing.assert_close(x[0:1], w * own + (1 - w) * other)
    expected = torch.zeros(splits.num_classes)
    expected[splits.y_train[index[i]]] += w
    expected[splits.y_train[p]] += 1 - w
    torch.testing.assert_close(taught[0], expected)


def test_a_longer_schedules_fresh_view_targets_reuse_a_shorter_ones(synthetic, tmp_cache, monkeypatch):
    """A view per epoch, drawn view by view: 08's 60-epoch table is the first 60 views of its
    120-epoch one, so the longer computes only the views it adds, and gives what it would alone."""
    splits = synthetic.subset(200)
    teacher = kdlib.build("DeepNN", seed=1).eval()
    short, long = (Config(epochs=e, views=e, view_order="epoch", mixup=True, progress=False) for e in (2, 5))
    assert torch.equal(kdlib.targets.make_views(200, long)[:, :2], kdlib.targets.make_views(200, short))
    assert all(torch.equal(a[:, :2], b) for a, b in zip(kdlib.targets.make_mixing(200, long),
                                                        kdlib.targets.make_mixing(200, short)))
    kdlib.teacher_targets(teacher, splits, short, needs=("logits",))
    computed = []
    real = kdlib.targets.distillation_targets
    monkeypatch.setattr(kdlib.targets, "distillation_targets", lambda m, x, *a: computed.append(len(x)) or real(m, x, *a))
    reused = kdlib.teacher_targets(teacher, splits, long, needs=("logits",))
    assert sum(computed) == 200 * 3  # views 3-5 of each image (blends: all distinct), not the first two again
    alone = kdlib.teacher_targets(teacher, splits, long, cache=False, needs=("logits",))
    assert reused.logits.shape == (200, 5, 10)
    torch.testing.assert_close(reused.logits, alone.logits)
    reused.check(splits, long, teacher, ("logits",))
    with pytest.raises(ValueError, match="other mixup"):
        reused.check(splits, replace(long, mixup=False), teacher, ("logits",))


def test_a_view_drawn_twice_is_run_through_the_teacher_once(synthetic, tmp_cache, monkeypatch):
    """Fresh views repeat (9 x 9 crops x 2 flips): each distinct (image, crop, flip) is computed
    once, also across a shorter schedule's cached table, and every view still gets its own
    outputs: what the teacher gives on that view alone."""
    splits = synthetic.subset(50)
    teacher = kdlib.build("DeepNN", seed=1).eval()
    short, long = (Config(epochs=e, views=e, view_order="epoch", progress=False) for e in (30, 60))
    views = kdlib.targets.make_views(50, long)
    distinct = [{tuple(v) for v in image.tolist()} for image in views]
    computed = []
    real = kdlib.targets.distillation_targets
    monkeypatch.setattr(kdlib.targets, "distillation_targets", lambda m, x, *a: computed.append(len(x)) or real(m, x, *a))
    kdlib.teacher_targets(teacher, splits, short, needs=("logits",))
    first = sum(len({tuple(v) for v in image[:30].tolist()}) for image in views)
    assert sum(computed) == first < 50 * 30  # some of 30 draws of 162 views repeat
    targets = kdlib.teacher_targets(teacher, splits, long, needs=("logits",))
    assert sum(computed) == sum(map(len, distinct))  # the 30 added views: only those never computed before
    for column in (0, 45, 59):  # each view's own outputs, as one batch of that view would give
        x, _ = kdlib.targets.mixed_view_batch(splits, torch.arange(50), torch.full((50,), column), views, None, True, "cpu")
        with torch.no_grad():
            torch.testing.assert_close(targets.logits[:, column], teacher(x), rtol=1e-4, atol=1e-4)
    computed.clear()  # a few fixed views: every cell run, in table order (earlier runs' targets to the bit)
    kdlib.teacher_targets(teacher, splits, Config(views=40, progress=False), needs=("logits",))
    assert sum(computed) == 50 * 40


def test_inconsistent_teaching_gives_the_plain_images_targets_whatever_view_the_student_sees(synthetic, tmp_cache):
    teacher = kdlib.build("DeepNN", seed=1).eval()
    splits = synthetic.subset(300)
    with torch.no_grad():
        plain = teacher(kdlib.data.normalize(splits.x_train, splits.mean, splits.std)).float()
    seen = [teacher]
    cfg = Config(epochs=1, batch_size=100, views=3, augment=True, teacher_views="plain", progress=False)
    kdlib.fit(kdlib.build("LightNN", seed=0), splits, _probe(seen), teacher, cfg)
    assert kdlib.teacher_targets(teacher, splits, cfg).views.shape == (300, 1, 3)
    for given, on_this_view in seen[1:]:
        nearest = torch.cdist(given, plain).min(1).values
        assert nearest.max() < 1e-4  # every row is the teacher on some plain image
        assert not torch.allclose(given, on_this_view, atol=1e-4)  # and not on the view the student saw


def test_mix_blends_each_image_with_one_of_its_own_members_rows():
    x = torch.arange(8.0).view(8, 1, 1, 1).expand(8, 3, 2, 2).contiguous()
    y = torch.tensor([0, 1, 2, 3, 0, 1, 2, 3])
    generators = [torch.Generator().manual_seed(s) for s in (0, 1)]
    mixed, labels = kdlib.data.mix(x, y, 4, generators)
    assert torch.allclose(labels.sum(1), torch.ones(8))
    values = mixed[:, 0, 0, 0]
    assert (values[:4] <= 3).all() and (values[4:] >= 4).all()  # member 0 mixes within rows 0-3, member 1 within 4-7
    again, _ = kdlib.data.mix(x, y, 4, [torch.Generator().manual_seed(s) for s in (0, 1)])
    assert torch.equal(mixed, again)


@pytest.mark.parametrize("settings, message", [
    (dict(mixup=True, teacher_views="plain"), 'teacher_views="same"'), (dict(teacher_views="plain", views=0), "views > 0"),
    (dict(teacher_views="sometimes"), "teacher_views"), (dict(view_order="epoch", views=0), "views > 0"),
    (dict(view_order="epoch", augment=False), "augment=True"),
])
def test_teaching_policies_that_cannot_hold_are_refused(settings, message):
    with pytest.raises(kdlib.checks.ParameterError, match=message):
        Config(**settings)


def test_mixup_refuses_gradient_attention(synthetic):
    with pytest.raises(ValueError, match="gradient maps from each image's own label"):
        kdlib.fit(kdlib.build("LightNN", seed=0), synthetic, "grad_at", kdlib.build("DeepNN", seed=1),
                  Config(epochs=1, views=0, mixup=True, progress=False))


def test_the_one_cycle_schedule_steps_every_batch(synthetic):
    cfg = Config(epochs=2, batch_size=100, lr=1e-2, augment=False, progress=False)
    run = kdlib.fit(kdlib.build("LightNN", seed=0), synthetic, "ce", cfg=cfg)
    # 12 steps: the last one runs at the floor lr / 25 / 1e4; had the schedule stepped once
    # per epoch, the last step would still be near its start, lr / 25.
    assert run.history[-1]["lr"] == pytest.approx(1e-2 / 25 / 1e4, rel=1e-3)
    assert 1e-2 / 25 < run.history[0]["lr"] <= 1e-2  # epoch 1 ends past the peak


def test_kd_students_of_different_teachers_differ(synthetic, fast_cfg, tmp_cache):
    a, b = (kdlib.fit(kdlib.build("LightNN", seed=0), synthetic, "kd", kdlib.build("DeepNN", seed=s), fast_cfg)
            for s in (1, 2))
    assert a.history[0]["loss_kd"] != b.history[0]["loss_kd"]


def test_fit_refuses_targets_made_for_other_views_data_or_teacher(synthetic, tmp_cache):
    teacher = kdlib.build("DeepNN", seed=1)
    cfg = Config(epochs=1, batch_size=100, views=2, progress=False)
    targets = kdlib.targets.teacher_targets(teacher, synthetic, cfg)
    cases = [(synthetic, Config(epochs=1, views=3, progress=False), teacher, "other views"),
             (synthetic, Config(epochs=1, views=2, view_seed=5, progress=False), teacher, "other views"),
             (synthetic, Config(epochs=1, views=2, augment=False, progress=False), teacher, "other views"),
             (synthetic.subset(300), cfg, teacher, "another training set"),
             (synthetic, cfg, kdlib.build("DeepNN", seed=2), "another teacher")]
    for splits, other_cfg, other_teacher, message in cases:
        with pytest.raises(ValueError, match=message):
            kdlib.fit(kdlib.build("LightNN", seed=0), splits, "kd", other_teacher, other_cfg, targets=targets)


def test_cached_targets_are_kept_apart_by_precision(synthetic, tmp_cache):
    teacher, small = kdlib.build("DeepNN", seed=1), synthetic.subset(32)
    for amp in ("off", "bf16", "off"):
        kdlib.targets.teacher_targets(teacher, small, Config(views=1, amp=amp, progress=False))
    assert len(list((tmp_cache / "targets").glob("*.pt"))) == 2


def test_a_damaged_target_cache_is_computed_again_with_a_warning(synthetic, tmp_cache):
    teacher, cfg = kdlib.build("DeepNN", seed=1), Config(views=1, progress=False)
    first = kdlib.targets.teacher_targets(teacher, synthetic, cfg)
    (cached,) = (tmp_cache / "targets").glob("*.pt")
    cached.write_bytes(cached.read_bytes()[:1000])  # truncated
    with pytest.warns(UserWarning, match="could not be read"):
        again = kdlib.targets.teacher_targets(teacher, synthetic, cfg)
    torch.testing.assert_close(again.logits, first.logits)


@pytest.mark.parametrize("bad, message", [
    ({"epochs": "abc"}, "epochs='abc' \\(str\\): expected an integer >= 1"),
    ({"lr": float("nan")}, "lr=nan"),
    ({"augment": "yes"}, "augment='yes'"),
    ({"device": "gpu"}, None),
])
def test_config_checks_types_and_ranges(bad, message):
    if message is None:  # a device string is checked where it is used
        with pytest.raises(kdlib.checks.ParameterError, match="not a device name"):
            kdlib.config.resolve_device(Config(**bad).device)
        return
    with pytest.raises(kdlib.checks.ParameterError, match=message):
        Config(**bad)


# ----------------------------------------------------------------------------- files from outside run no code

class _Planted:
    """Pickles to a call that creates a file when the pickle is loaded."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        from pathlib import Path
        return (Path.touch, (Path(self.marker),))


@pytest.fixture
def unsafe_torch_default(monkeypatch):
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")  # torch's switch back to full pickle


def test_a_planted_checkpoint_runs_no_code(tmp_path, unsafe_torch_default):
    marker, path = tmp_path / "ran", tmp_path / "teacher.pt"
    torch.save({"architecture": _Planted(marker), "num_classes": 10, "state_dict": {}}, path)
    with pytest.raises(CheckpointError, match="not a file torch's safe loader reads"):
        kdlib.load_checkpoint(path)
    assert not marker.exists()


def test_plain_saved_weights_are_told_how_to_become_a_checkpoint(tmp_path):
    path = tmp_path / "weights.pt"
    torch.save(kdlib.build("LightNN", seed=0).state_dict(), path)
    with pytest.raises(CheckpointError, match="not a kdlib checkpoint .*kdlib.save_checkpoint"):
        kdlib.load_checkpoint(path)


def test_a_planted_target_cache_runs_no_code(synthetic, tmp_cache, tmp_path, unsafe_torch_default):
    teacher, cfg = kdlib.build("DeepNN", seed=1), Config(views=1, progress=False)
    kdlib.targets.teacher_targets(teacher, synthetic, cfg)
    (cached,) = (tmp_cache / "targets").glob("*.pt")
    marker = tmp_path / "ran"
    torch.save({"views": _Planted(marker)}, cached)
    with pytest.warns(UserWarning, match="could not be read"):
        kdlib.targets.teacher_targets(teacher, synthetic, cfg)
    assert not marker.exists()


@pytest.mark.parametrize("header, message", [
    ({"architecture": "ResNet"}, "damaged header: architecture 'ResNet'"),
    ({"num_classes": -3}, "-3 classes"),
    ({"num_classes": 7}, "weights do not fit a LightNN for 7 classes"),
])
def test_a_checkpoint_with_an_edited_header_is_refused(tmp_path, header, message):
    path = kdlib.save_checkpoint(kdlib.build("LightNN", seed=0), tmp_path / "m.pt")
    payload = torch.load(path, weights_only=True)
    torch.save({**payload, **header}, path)
    with pytest.raises(CheckpointError, match=message):
        kdlib.load_checkpoint(path)


def test_fit_refuses_targets_without_what_the_method_needs(synthetic, tmp_cache):
    teacher, cfg = kdlib.build("DeepNN", seed=1), Config(epochs=1, views=1, progress=False)
    logits_only = kdlib.targets.teacher_targets(teacher, synthetic, cfg, needs=("logits",))
    assert logits_only.grad == [] and logits_only.act == []
    kdlib.fit(kdlib.build("LightNN", seed=0), synthetic, "kd", teacher, cfg, targets=logits_only)
    with pytest.raises(ValueError, match="needs no 'act'"):
        kdlib.fit(kdlib.build("LightNN", seed=0), synthetic, "act_at", teacher, cfg, targets=logits_only)


def test_map_similarity_is_one_for_the_teacher_itself_and_rises_with_attention_transfer(synthetic, tmp_cache):
    splits = synthetic.subset(400, 100)
    teacher = kdlib.fit(kdlib.build("DeepNN", seed=1), splits, "ce", cfg=Config(epochs=2, progress=False)).model
    itself = kdlib.evaluation.map_similarity(teacher, teacher, splits)
    assert set(itself) == {"act", "grad"} and all(v == pytest.approx(1.0, abs=1e-3) for v in sum(itself.values(), []))
    cfg = Config(epochs=3, batch_size=50, views=1, beta=1000.0, progress=False)
    ce = kdlib.fit(kdlib.build("LightNN", seed=0), splits, "ce", teacher, cfg)
    act = kdlib.fit(kdlib.build("LightNN", seed=0), splits, "act_at", teacher, cfg)
    assert all(0 < v < 1 for v in ce.metrics["map_similarity"]["act"])
    assert all(a > c for a, c in zip(act.metrics["map_similarity"]["act"], ce.metrics["map_similarity"]["act"]))
    table = kdlib.results.map_similarity([kdlib.results.record(r) for r in (ce, act)])
    assert list(table["method"]) == ["ce", "act_at"] and list(table.columns[1:]) == ["act 1", "act 2", "grad 1", "grad 2"]


def test_kdlib_computes_with_float32_subnormals_as_zeros():
    # Subnormal weights made late CPU epochs twice as slow (scripts/denormals.py); import kdlib flushes them.
    import subprocess
    import sys
    code = ("import torch, kdlib\n"
            "sub = torch.full((4,), 1000, dtype=torch.int32).view(torch.float32)  # subnormal bits\n"
            "print(bool((sub * 1.0 == 0).all()))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "True"
