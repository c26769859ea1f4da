"""What identifies a run, and the keys and matches derived from it."""

import pytest
import torch

import kdlib
from kdlib import data, experiment, identity, results
from kdlib.files import digest

from test_data import make_image_folder


def test_a_digest_tells_apart_the_same_bytes_read_as_another_type_or_shape():
    assert digest(torch.zeros(4, dtype=torch.int32)) != digest(torch.zeros(2, dtype=torch.int64))
    assert digest(torch.zeros(2, 3)) != digest(torch.zeros(3, 2))
    assert digest(torch.arange(6.0)) == digest(torch.arange(6.0))


def test_the_identity_holds_recipe_group_device_and_code(synthetic):
    cfg = kdlib.Config(seed=2)
    ident = identity.of_run(cfg, synthetic, None, "kd", [2, 0])
    assert ident["recipe"] == "kd" and ident["group"] == [0, 2] and ident["code"] == identity.ENGINE_CODE
    assert ident["recipe_code"] == identity.recipe_code("kd") != identity.recipe_code("kd_grad_at")
    assert ident["device_type"] == "cpu" and "progress" not in ident["settings"]
    assert identity.of_run(cfg)["group"] == [2]  # alone by default
    assert identity.matches({**ident, "extra": 1}, ident) and not identity.matches({**ident, "recipe": "ce"}, ident)


def test_a_decoder_change_decodes_again(tmp_path, tmp_cache, monkeypatch):
    root = make_image_folder(tmp_path / "images")
    kdlib.load(root)
    decoded = []
    real = data._decode
    monkeypatch.setattr(data, "_decode", lambda *a: decoded.append(1) or real(*a))
    kdlib.load(root)
    assert decoded == []  # the same decoder: read from the cache
    monkeypatch.setattr(data, "DATA_CODE_VERSION", "a-fixed-decoder")
    kdlib.load(root)
    assert decoded == [1, 1]  # train and test decoded again


def test_a_new_method_changes_no_other_recipes_code_and_an_edit_of_a_recipe_does():
    source = (identity._HERE / "methods.py").read_text()
    added = source.replace("DECLARED = {m.name: m for m in [", """def _kd_new(batch, cfg):
    return {**_kd(batch, cfg), "extra": batch.logits.pow(2).mean(1)}


DECLARED = {m.name: m for m in [
    Method("kd_new", "a new method", ("logits",), _kd_new),""")
    edited = source.replace('"kd": a * kd_loss(', '"kd": 2 * a * kd_loss(')
    assert added != source and edited != source
    for name in ("ce", "kd", "grad_at", "regressor"):
        assert identity.recipe_code(name, added) == identity.recipe_code(name)
    assert identity.recipe_code("kd", edited) != identity.recipe_code("kd")
    assert identity.recipe_code("kd_grad_at", edited) != identity.recipe_code("kd_grad_at")  # it calls _kd
    assert identity.recipe_code("ce", edited) == identity.recipe_code("ce")


def test_a_recipe_edit_retrains_that_method_only_and_keeps_the_teachers_targets(synthetic, tmp_cache, tmp_path,
                                                                                monkeypatch):
    cfg = kdlib.Config(epochs=1, batch_size=64, views=1, progress=False)
    teacher = kdlib.build("DeepNN", synthetic.num_classes, seed=3).eval()
    folders = dict(results_dir=tmp_path / "results", checkpoint_dir=tmp_path / "ck")
    for method in ("ce", "kd"):
        experiment.train_method(method, synthetic, cfg, [0], teacher, **folders)
    trained, computed = [], []
    real_fit, real_targets = experiment.fit_together, kdlib.targets.distillation_targets
    monkeypatch.setattr(experiment, "fit_together", lambda *a, **k: trained.append(a[2]) or real_fit(*a, **k))
    monkeypatch.setattr(kdlib.targets, "distillation_targets", lambda *a, **k: computed.append(1) or real_targets(*a, **k))
    real_code = identity.recipe_code
    monkeypatch.setattr(identity, "recipe_code", lambda name, source=None: "edited" if name == "kd" else real_code(name))
    for method in ("ce", "kd"):
        experiment.train_method(method, synthetic, cfg, [0], teacher, **folders, reuse=True)
    assert trained == ["kd"] and computed == []  # CE kept; KD retrained on the cached targets
    monkeypatch.setattr(identity, "TARGETS_CODE", "a-fixed-target-bug")
    kdlib.teacher_targets(teacher, synthetic, cfg, needs=("logits",))
    assert computed  # the code that computes them changed: computed again


def test_tables_do_not_mix_runs_of_other_code_but_do_mix_groups(synthetic, tmp_path):
    base = {"metrics": {"accuracy": 0.5}, "seconds": 1.0, "settings": {"epochs": 1}, "teacher": None,
            **{k: "same" for k in identity.COMPARED}}
    records = [{**base, "method": "ce", "seed": 0, "time": "1", "group": [0, 1]},
               {**base, "method": "ce", "seed": 1, "time": "2", "group": [0, 1]},
               {**base, "method": "kd", "seed": 0, "time": "3", "group": [0]},
               {**base, "method": "kd", "seed": 1, "time": "4", "group": [1], "code": "older"},
               {**base, "method": "kd", "seed": 2, "time": "5", "group": [2]}]
    with pytest.warns(UserWarning, match="differ in code"):
        kept = results.comparable(records)
    assert sorted((r["method"], r["seed"]) for r in kept) == [("ce", 0), ("ce", 1), ("kd", 0), ("kd", 2)]


def test_a_run_is_keyed_on_the_knobs_its_recipe_reads_only(synthetic):
    """CE reads no KD temperature: a CE run is the same run at any T (a notebook that does not
    declare T must not make another one); a KD run is not."""
    a, b = kdlib.Config(temperature=4.0, kd_weight=0.5), kdlib.Config(temperature=3.0, kd_weight=0.25)
    assert identity.of_run(a, synthetic, None, "ce") == identity.of_run(b, synthetic, None, "ce")
    assert identity.of_run(a, synthetic, None, "kd") != identity.of_run(b, synthetic, None, "kd")
    assert "temperature" not in identity.of_run(a, synthetic, None, "act_at")["settings"]
    assert identity.of_run(a, synthetic, None, "act_at")["settings"]["beta"] == a.beta
