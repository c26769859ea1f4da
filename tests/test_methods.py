"""The tutorial's two feature methods against its own formulation, written out as its page
writes it, and the declarations every table and figure reads."""

from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import kdlib
from kdlib import methods, models, results
from kdlib.config import Config


def _batch(seed=0, n=8):
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, 32, 32, generator=generator), torch.randint(0, 10, (n,), generator=generator)


def _teacher_features(x):
    teacher = kdlib.build("DeepNN", seed=1).eval()
    with torch.no_grad():
        return kdlib.forward_features(teacher, x)[1][models.hint_stage("tutorial")]


def _grads(loss, model):
    return torch.autograd.grad(loss, [p for p in model.parameters()], allow_unused=True)


def test_the_cosine_method_is_the_tutorials_loss_and_gradient():
    x, y = _batch()
    teacher_map = _teacher_features(x)  # 32x8x8: the tutorial's teacher representation before pooling
    student = kdlib.build("LightNN", seed=0).eval()  # no dropout: both formulations see one network
    cfg = Config(feature_weight=0.25)
    _, terms = methods.apply("cosine", student, x, y, {"feat": teacher_map.flatten(1)}, cfg)
    ours = sum(terms.values())
    # The tutorial: hidden = flatten(features); teacher's = avg_pool1d(flatten, 2); CosineEmbeddingLoss(target 1)
    hidden = torch.flatten(student.features(x), 1)
    logits = student.classifier(hidden)
    theirs = (0.25 * nn.CosineEmbeddingLoss()(hidden, F.avg_pool1d(teacher_map.flatten(1), 2), torch.ones(len(x)))
              + 0.75 * nn.CrossEntropyLoss()(logits, y))
    torch.testing.assert_close(ours, theirs)
    for a, b in zip(_grads(ours, student), _grads(theirs, student)):
        torch.testing.assert_close(a, b)


def test_the_regressor_method_is_the_tutorials_loss_and_trains_its_regressor():
    x, y = _batch(1)
    teacher_map = _teacher_features(x)
    student = kdlib.build("LightNN", seed=0).eval()
    cfg = Config(feature_weight=0.25)
    head = methods.regressor_head(cfg, seed=3)
    assert (head.in_channels, head.out_channels, head.kernel_size) == (16, 32, (3, 3))  # the tutorial's
    _, terms = methods.apply("regressor", student, x, y, {"feat": teacher_map.flatten(1)}, cfg, head=head)
    ours = sum(terms.values())
    features = student.features(x)
    theirs = 0.25 * nn.MSELoss()(head(features), teacher_map) + 0.75 * nn.CrossEntropyLoss()(
        student.classifier(torch.flatten(features, 1)), y)
    torch.testing.assert_close(ours, theirs)
    for a, b in zip(_grads(ours, head), _grads(theirs, head)):
        torch.testing.assert_close(a, b)
        assert a.abs().sum() > 0  # the regressor learns too


def test_the_regressor_trains_with_the_student_and_leaves_it_its_size(synthetic, tmp_cache, monkeypatch):
    teacher = kdlib.build("DeepNN", seed=1)
    cfg = Config(epochs=1, batch_size=64, views=1, amp="off", progress=False)
    student = kdlib.build("LightNN", seed=0)
    heads = []
    declared = methods.DECLARED["regressor"]
    monkeypatch.setitem(methods.DECLARED, "regressor", replace(declared, head=lambda c, s: heads.append(
        declared.head(c, s)) or heads[-1]))
    run = kdlib.fit(student, synthetic, "regressor", teacher, replace(cfg, epochs=3))
    assert kdlib.count_parameters(run.model) == 267_738
    (head,) = heads
    untrained = declared.head(cfg, cfg.seed)
    assert not torch.equal(head.weight.detach().cpu(), untrained.weight)  # the regressor itself trained
    assert run.history[-1]["loss_feat"] < run.history[0]["loss_feat"]  # and its term fell
    # w = 0: the feature term is zero and CE has weight 1: the CE student exactly
    zero = kdlib.fit(kdlib.build("LightNN", seed=0), synthetic, "regressor", teacher, replace(cfg, feature_weight=0.0))
    ce = kdlib.fit(kdlib.build("LightNN", seed=0), synthetic, "ce", None, cfg)
    for a, b in zip(zero.model.state_dict().values(), ce.model.state_dict().values()):
        torch.testing.assert_close(a, b)


def test_stacked_members_each_use_their_own_regressor():
    from kdlib.train import _apply_heads
    heads = [methods.regressor_head(Config(), seed) for seed in (0, 1)]
    x = torch.randn(6, 16, 8, 8)
    both = _apply_heads(heads)(x)
    torch.testing.assert_close(both, torch.cat([heads[0](x[:3]), heads[1](x[3:])]))


@pytest.mark.parametrize("family", ["tutorial", "reference"])
def test_the_feature_methods_match_the_teacher_stage_of_the_students_size(family):
    student = models.stage_shapes(models.student_architecture(family))[-1]
    teacher = models.stage_shapes(models.teacher_architecture(family))[models.hint_stage(family)]
    assert student[1:] == teacher[1:] == (8, 8)
    assert methods.regressor_head(Config(family=family), 0).out_channels == teacher[0]


def test_a_method_is_declared_once_and_every_table_reads_it():
    assert methods.ORDER == ["teacher", *methods.DECLARED]
    assert set(methods.METHODS) == set(methods.lesson("methods")) and "kd_plain" not in methods.METHODS
    assert results.REFERENCE["kd_untrained"] == 74.54 and "kd" not in results.REFERENCE
    assert results.TUTORIAL == {"teacher": 75.10, "ce": 69.86, "kd": 70.80, "cosine": 71.50, "regressor": 70.82}
    assert results.MATCHED_MAPS == {"grad_at": "grad", "act_at": "act", "kd_grad_at": "grad"}
    assert kdlib.checks.problems({"beta_method": "act_at"}) == []
    assert kdlib.checks.problems({"beta_method": "cosine"})  # no beta in its loss
    assert all(m.label for m in methods.METHODS.values())
    records = [{"method": m, "seed": 0, "metrics": {"accuracy": 0.5}, "seconds": 1.0, "time": str(i),
                "settings": {}, "code": "x"} for i, m in enumerate(["regressor", "ce", "cosine"])]
    assert results.table(records)["method"].tolist() == ["ce", "cosine", "regressor"]


def test_apply_asks_for_the_head_a_method_trains():
    x, y = _batch()
    with pytest.raises(ValueError, match="trains its own head with the student: pass head="):
        methods.apply("regressor", kdlib.build("LightNN", seed=0), x, y, {"feat": _teacher_features(x).flatten(1)},
                      Config())


def test_each_lesson_shows_its_own_rows_beside_the_baselines_it_compares_with():
    assert methods.rows("consistency") == ["ce", "kd", "kd_plain", "kd_fresh", "kd_mixup", "ce_fresh", "ce_mixup"]
    assert methods.rows("teachers") == ["ce", "kd", "kd_untrained", "kd_small_teacher",
                                        "kd_epoch005", "kd_epoch015", "kd_epoch030"]
    with pytest.raises(ValueError, match="Unknown lesson"):
        methods.rows("nope")
    records = [{"method": m, "seed": 0, "metrics": {"accuracy": 0.5}, "seconds": 1.0, "time": str(i),
                "settings": {}, "code": "x"} for i, m in enumerate(["ce", "kd", "kd_plain", "kd_epoch005"])]
    assert results.table(records)["method"].tolist() == ["ce", "kd"]
    assert results.table(records, lesson="consistency")["method"].tolist() == ["ce", "kd", "kd_plain"]
    assert results.table(records, lesson="teachers")["method"].tolist() == ["ce", "kd", "kd_epoch005"]


def test_a_way_of_teaching_is_kd_with_its_declared_settings_and_tables_compare_it_as_its_own():
    from kdlib import experiment, identity
    cfg = Config(epochs=30, views=8)
    assert experiment.method_config("kd_plain", cfg).teacher_views == "plain"
    assert experiment.method_config("kd_fresh", cfg).views == 30  # "epochs": a view per epoch
    mixup = experiment.method_config("kd_mixup", cfg)  # on kd_fresh's views, each blended with a partner
    assert mixup.mixup and mixup.views == 30 and mixup.view_order == "epoch"
    assert experiment.method_config("kd", cfg) == cfg
    # Its own code: a run of KD is never taken for a run of kd_plain (nor the other way round).
    assert identity.recipe_code("kd_plain") != identity.recipe_code("kd")
    # Tables keep it beside KD and CE although its settings differ on purpose; another difference still counts.
    base = {"code": "x", "time": "0", "seconds": 1.0}
    ce = {**base, "method": "ce", "seed": 0, "metrics": {"accuracy": 0.5}, "settings": {"views": 8, "teacher_views": "same"}}
    plain = {**base, "method": "kd_plain", "seed": 0, "metrics": {"accuracy": 0.6}, "time": "1",
             "settings": {"views": 8, "teacher_views": "plain"}}
    other = {**plain, "method": "kd_fresh", "time": "2", "settings": {"views": 30, "teacher_views": "same", "lr": 1.0}}
    kept = [r["method"] for r in results.comparable([ce, plain, other], warn=False)]
    assert kept == ["ce", "kd_plain"] or kept == ["kd_fresh"]
    assert [r["method"] for r in results.comparable([ce, plain], warn=False)] == ["ce", "kd_plain"]
