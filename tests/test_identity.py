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
    ident = identity.of(cfg, synthetic, None, "kd", [2, 0])
    assert ident["recipe"] == "kd" and ident["group"] == [0, 2] and ident["code"] == identity.CODE_VERSION
    assert ident["device_type"] == "cpu" and "progress" not in ident["settings"]
    assert identity.of(cfg)["group"] == [2]  # alone by default
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


def test_reuse_takes_only_a_run_of_the_same_recipe(synthetic, tmp_path, monkeypatch):
    cfg = kdlib.Config(epochs=1, batch_size=64, progress=False)
    folders = dict(results_dir=tmp_path / "results", checkpoint_dir=tmp_path / "ck")
    experiment.train_method("ce", synthetic, cfg, [0], **folders, name="student")
    trained = []
    real_fit = experiment.fit_together
    monkeypatch.setattr(experiment, "fit_together", lambda *a, **k: trained.append(a[2]) or real_fit(*a, **k))
    experiment.train_method("ce", synthetic, cfg, [0], **folders, name="student", reuse=True)
    assert trained == []
    # The same name and settings, another recipe: label smoothing is not the CE run.
    experiment.train_method("ls", synthetic, cfg, [0], **folders, name="student", reuse=True)
    assert trained == ["ls"]


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
