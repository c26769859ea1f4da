"""Epoch states: a run interrupted after an epoch and continued ends exactly as the same run
left alone; a state of other training is never continued; the teacher trains on fresh views;
progress lines; the validation split; the precision chosen for each kind of hardware."""

import pytest
import torch

import kdlib
from kdlib import config, experiment, train
from kdlib.config import Config


class Interrupted(Exception):
    pass


def _interrupt_after(monkeypatch, epoch):
    """Make the engine stop right after `epoch` has finished (and its state is written)."""
    real = train._show

    def show(bar, label, row, epochs, elapsed):
        real(bar, label, row, epochs, elapsed)
        if row["epoch"] == epoch:
            raise Interrupted
    monkeypatch.setattr(train, "_show", show)


def _without_seconds(history):
    return [{k: v for k, v in row.items() if k != "seconds"} for row in history]


def _assert_same(a, b):
    for (name, x), (_, y) in zip(a.model.state_dict().items(), b.model.state_dict().items()):
        assert torch.equal(x, y), name
    assert _without_seconds(a.history) == _without_seconds(b.history)
    assert a.metrics["accuracy"] == b.metrics["accuracy"]


# fixed views; fresh views (the teacher's); a method with its own trained module (the regressor's state)
@pytest.mark.parametrize("method, views", [("kd", 2), ("ce", 0), ("regressor", 2)])
def test_an_interrupted_run_continues_to_exactly_the_uninterrupted_result(method, views, synthetic, tmp_path,
                                                                          tmp_cache, monkeypatch):
    cfg = Config(epochs=3, batch_size=64, views=views, amp="off", progress=False)
    teacher = kdlib.build("DeepNN", seed=1).eval()
    alone = kdlib.fit(kdlib.build("LightNN", seed=0), synthetic, method, teacher, cfg)

    state = tmp_path / "run.state.pt"
    with monkeypatch.context() as patch:
        _interrupt_after(patch, 2)
        with pytest.raises(Interrupted):
            kdlib.fit(kdlib.build("LightNN", seed=0), synthetic, method, teacher, cfg, state=state)
    assert state.is_file()
    continued = kdlib.fit(kdlib.build("LightNN", seed=0), synthetic, method, teacher, cfg, state=state)
    _assert_same(continued, alone)
    assert not state.exists()  # a finished run leaves no state behind


def test_a_group_of_seeds_continues_exactly_too(synthetic, tmp_path, tmp_cache, monkeypatch):
    cfg = Config(epochs=2, batch_size=64, views=2, amp="off", progress=False)
    alone = train.fit_together([kdlib.build("LightNN", seed=s) for s in (0, 1)], synthetic, "ce", cfg=cfg, seeds=[0, 1])
    state = tmp_path / "group.state.pt"
    with monkeypatch.context() as patch:
        _interrupt_after(patch, 1)
        with pytest.raises(Interrupted):
            train.fit_together([kdlib.build("LightNN", seed=s) for s in (0, 1)], synthetic, "ce", cfg=cfg,
                               seeds=[0, 1], state=state)
    continued = train.fit_together([kdlib.build("LightNN", seed=s) for s in (0, 1)], synthetic, "ce", cfg=cfg,
                                   seeds=[0, 1], state=state)
    for a, b in zip(continued, alone):
        _assert_same(a, b)


def test_a_state_of_other_training_is_not_continued(synthetic, tmp_path, tmp_cache, monkeypatch, capsys):
    cfg = Config(epochs=2, batch_size=64, views=2, amp="off", progress=False)
    state = tmp_path / "run.state.pt"
    with monkeypatch.context() as patch:
        _interrupt_after(patch, 1)
        with pytest.raises(Interrupted):
            kdlib.fit(kdlib.build("LightNN", seed=0), synthetic, "ce", cfg=cfg, state=state)
    other = Config(epochs=2, batch_size=64, views=2, amp="off", progress=False, lr=1e-3)
    fresh = kdlib.fit(kdlib.build("LightNN", seed=0), synthetic, "ce", cfg=other)
    started_over = kdlib.fit(kdlib.build("LightNN", seed=0), synthetic, "ce", cfg=other, state=state)
    assert "other training" in capsys.readouterr().out
    _assert_same(started_over, fresh)


def test_a_damaged_state_starts_the_run_afresh(synthetic, tmp_path, tmp_cache, capsys):
    cfg = Config(epochs=1, batch_size=64, views=2, amp="off", progress=False)
    state = tmp_path / "run.state.pt"
    state.write_bytes(b"not a state")
    run = kdlib.fit(kdlib.build("LightNN", seed=0), synthetic, "ce", cfg=cfg, state=state)
    assert "could not be read" in capsys.readouterr().out
    _assert_same(run, kdlib.fit(kdlib.build("LightNN", seed=0), synthetic, "ce", cfg=cfg))


def test_train_method_with_reuse_continues_an_interrupted_seed(synthetic, tmp_path, tmp_cache, monkeypatch):
    cfg = Config(epochs=2, batch_size=64, views=2, amp="off", progress=False)
    folders = dict(results_dir=tmp_path / "results", checkpoint_dir=tmp_path / "checkpoints")
    with monkeypatch.context() as patch:
        _interrupt_after(patch, 1)
        with pytest.raises(Interrupted):
            experiment.train_method("ce", synthetic, cfg, [0], **folders, reuse=True)
    assert [p.name for p in (tmp_path / "checkpoints").iterdir() if p.suffix != ".lock"] == ["student-ce-seed0.state.pt"]
    calls = []
    real = train._resume
    monkeypatch.setattr(train, "_resume", lambda *a: calls.append(real(*a)) or calls[-1])
    run, = experiment.train_method("ce", synthetic, cfg, [0], **folders, reuse=True)
    assert calls == [(2, pytest.approx(calls[0][1]))]  # continued at epoch 2
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["student-ce-seed0.pt"]
    _assert_same(run, kdlib.fit(kdlib.build("LightNN", seed=0), synthetic, "ce", cfg=cfg))


def test_the_teacher_trains_on_fresh_views_not_the_students_view_table(synthetic, tmp_path, tmp_cache, monkeypatch):
    fresh = []
    real_random_views = kdlib.data.random_views
    monkeypatch.setattr(train, "make_views", lambda *a: pytest.fail("the teacher read the students' view table"))
    monkeypatch.setattr(kdlib.data, "random_views", lambda *a, **k: fresh.append(1) or real_random_views(*a, **k))
    cfg = Config(epochs=1, batch_size=100, views=8, amp="off", progress=False)
    run = experiment.train_teacher(synthetic, cfg, tmp_path / "results", tmp_path / "checkpoints")
    assert len(fresh) == 6  # a fresh crop and flip for each of the 6 batches
    record, = kdlib.results.load(tmp_path / "results")
    assert record["config"]["views"] == 0 and record["fresh_views"] is True
    assert run.config.views == 0


def test_each_epoch_writes_one_progress_line(synthetic, tmp_path, monkeypatch):
    log = tmp_path / "progress.log"
    monkeypatch.setenv("KDLIB_PROGRESS_FILE", str(log))
    cfg = Config(epochs=2, batch_size=100, views=0, amp="off", progress=False)
    kdlib.fit(kdlib.build("LightNN", seed=0), synthetic, "ce", cfg=cfg, label="ce seed 0")
    lines = log.read_text().splitlines()
    assert [line.split("  ")[:2] for line in lines] == [["ce seed 0", "epoch 1/2"], ["ce seed 0", "epoch 2/2"]]
    assert all("s/epoch" in line and "min left" in line and "test" in line for line in lines)


def test_the_validation_split_is_fixed_and_disjoint_from_the_training_images():
    # images that carry their own index, so that "the same image" can be checked
    n = 1000
    x = torch.arange(n, dtype=torch.int64).view(n, 1, 1, 1).expand(n, 3, 2, 2)
    index_of = lambda images: set((images[:, 0, 0, 0].long() + 256 * images[:, 1, 0, 0].long()).tolist())
    x = torch.stack([x[:, 0] % 256, x[:, 0] // 256, x[:, 0] * 0], 1).to(torch.uint8)
    base = kdlib.data.Splits(x, torch.arange(n) % 10, x[:10], torch.arange(10), [str(i) for i in range(10)])
    a, b = base.subset(n_train=300, n_val=200), base.subset(n_train=300, n_val=200)
    assert torch.equal(a.x_val, b.x_val) and torch.equal(a.x_train, b.x_train)
    train_ids, val_ids = index_of(a.x_train), index_of(a.x_val)
    assert len(train_ids) == 300 and len(val_ids) == 200 and not train_ids & val_ids
    assert base.subset(n_train=300).y_val is None
    assert torch.equal(base.subset(n_train=300).x_train, base.subset(n_train=300, n_test=5).x_train)
    with pytest.raises(kdlib.data.DataError, match="n_val"):
        base.subset(n_val=n)
    # More than there is is refused, not quietly cut to what there is.
    with pytest.raises(kdlib.data.DataError, match=rf"n_train={n - 199} .*{n - 200} lie outside the 200-image validation "
                                                   rf"split.*n_train <= {n - 200}.*or a smaller n_val"):
        base.subset(n_train=n - 199, n_val=200)
    assert len(base.subset(n_train=n - 200, n_val=200).y_train) == n - 200  # exactly all of them is fine
    with pytest.raises(kdlib.data.DataError, match=rf"n_train={n + 1} .*there are {n}\)"):
        base.subset(n_train=n + 1)
    with pytest.raises(kdlib.data.DataError, match="n_test=11 asks for more test images than the 10 there are"):
        base.subset(n_test=11)


def test_learning_curves_read_the_validation_split_not_the_test_set(synthetic, monkeypatch):
    splits = synthetic.subset(n_val=100)
    seen = []
    real = train.predict
    monkeypatch.setattr(train, "predict", lambda model, images, *a, **k: seen.append(len(images)) or real(model, images, *a, **k))
    cfg = Config(epochs=2, batch_size=100, views=0, amp="off", progress=False)
    run = kdlib.fit(kdlib.build("LightNN", seed=0), splits, "ce", cfg=cfg)
    assert all("val_acc" in row and "test_acc" not in row for row in run.history)
    assert seen[:2] == [100, 100]  # the two epochs' points: validation images only
    assert len(splits.y_train) == 500


@pytest.mark.parametrize("capability, expected", [((7, 5), "float32"), ((8, 0), "bf16"), ((9, 0), "bf16")])
def test_bf16_only_on_gpus_that_run_it_natively(capability, expected, monkeypatch):
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    assert config.precision(torch.device("cuda"), "auto") == expected
    assert config.precision(torch.device("cuda"), "off") == "float32"


@pytest.mark.parametrize("vendor, flags, expected", [
    ("AuthenticAMD", {"avx512f"}, "float32"), ("AuthenticAMD", {"avx512f", "avx512_bf16"}, "bf16"),
    # an Intel Xeon with avx512_bf16 but no AMX: its bf16 matmul ran at half float32's (kdlib.cpubench)
    ("GenuineIntel", {"avx512f", "avx512_bf16"}, "float32"),
    ("GenuineIntel", {"avx512_bf16", "amx_bf16"}, "bf16"), ("", set(), "float32")])
def test_bf16_on_the_cpu_only_where_it_runs_fast(vendor, flags, expected, monkeypatch):
    monkeypatch.setattr(config, "_cpu_flags", lambda: frozenset(flags))
    monkeypatch.setattr(config, "_cpu_vendor", lambda: vendor)
    assert config.precision(torch.device("cpu"), "auto") == expected
    assert config.precision(torch.device("cpu"), "bf16") == "bf16"

