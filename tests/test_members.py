"""Models trained together (kdlib.members, train.fit_together) equal the same models trained
apart: forward pass, each member's loss, its gradients, an optimizer step, and whole epochs of
the engine. Dropout is switched off here (p = 0) because it is the one thing members do not
reproduce bit for bit: their masks come from one stream."""

import pytest
import torch
from torch import nn

import kdlib
from kdlib import train
from kdlib.members import Members

SEEDS = [0, 1, 2]


def _without_dropout(model):
    for module in model.modules():
        if isinstance(module, nn.Dropout):
            module.p = 0.0
    return model


def _models(architecture="LightNN"):
    return [_without_dropout(kdlib.build(architecture, seed=s)) for s in SEEDS]


def _close(a, b):
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("architecture", ["LightNN", "ReferenceLightNN"])
def test_the_stacked_forward_pass_is_each_members_own(architecture):
    apart = _models(architecture)
    members = Members(_models(architecture)).train()
    x = torch.randn(len(SEEDS) * 6, 3, 32, 32)
    logits, stages = members.forward_features(x)
    for i, model in enumerate(apart):
        own_logits, own_stages = kdlib.forward_features(model.train(), x[6 * i:6 * (i + 1)])
        _close(logits[6 * i:6 * (i + 1)], own_logits)
        for stage, own in zip(stages, own_stages, strict=True):
            _close(stage[6 * i:6 * (i + 1)], own)
    # Batch norm's running statistics are each member's own, too.
    members.write_back()
    for model, twin in zip(members._models, apart):
        for (name, value), own in zip(model.named_buffers(), twin.buffers()):
            _close(value.float(), own.float())


@pytest.mark.parametrize("method", ["ce", "kd", "grad_at", "act_at", "kd_grad_at", "ls"])
def test_each_member_gets_exactly_its_own_loss_gradients_and_optimizer_step(method):
    recipe = kdlib.methods.get(method)
    teacher = kdlib.build("DeepNN", seed=9).eval()
    cfg = kdlib.Config(progress=False)
    x, y = torch.randn(len(SEEDS) * 5, 3, 32, 32), torch.randint(0, 10, (len(SEEDS) * 5,))
    targets = kdlib.targets.distillation_targets(teacher, x, y, recipe.needs) if recipe.needs else {}

    members = Members(_models()).train()
    logits, per_member = kdlib.methods.member_losses(train._forward(members, False, recipe.reads_stages), recipe,
                                             x, y, targets, cfg, len(SEEDS))
    sum(value.sum() for value in per_member.values()).backward()
    optimizer = torch.optim.Adam(members.parameters(), lr=1e-2, weight_decay=1e-3)
    optimizer.step()
    members.write_back()

    for i, model in enumerate(_models()):
        rows = slice(5 * i, 5 * (i + 1))
        own_targets = {k: ([m[rows] for m in v] if isinstance(v, list) else v[rows]) for k, v in targets.items()}
        own_logits, own_terms = kdlib.methods.apply(recipe, model.train(), x[rows], y[rows], own_targets, cfg)
        _close(logits[rows], own_logits)
        assert own_terms.keys() == per_member.keys()
        for name, value in own_terms.items():
            _close(per_member[name][i], value)
        sum(own_terms.values()).backward()
        stacked = dict(members.named_parameters())
        for parameter in model.parameters():  # the gradient, before the step
            _close(stacked[_stacked_name(members, model, parameter)].grad[i], parameter.grad)
        # One optimizer step: given this member's gradients, a model of its own stepped by its
        # own Adam lands where the stacked Adam put the member (elementwise state, shared rate).
        own_optimizer = torch.optim.Adam(model.parameters(), lr=1e-2, weight_decay=1e-3)
        for parameter in model.parameters():
            parameter.grad = stacked[_stacked_name(members, model, parameter)].grad[i].clone()
        own_optimizer.step()
        for parameter in model.parameters():
            attribute = _stacked_name(members, model, parameter)
            for key in ("exp_avg", "exp_avg_sq"):
                _close(optimizer.state[stacked[attribute]][key][i], own_optimizer.state[parameter][key])
        for trained, own in zip(members._models[i].parameters(), model.parameters()):
            _close(trained, own)


def _stacked_name(members, model, parameter):
    """The name of the members' stacked tensor that holds `parameter` of `model`."""
    for k, piece in enumerate(kdlib.models.segments(model)):
        for name, own in piece.named_parameters():
            if own is parameter:
                return members._names[k][0][name]
    raise KeyError(parameter.shape)


@pytest.mark.parametrize("method,views", [("ce", 2), ("kd", 2), ("grad_at", 2), ("kd", 0)],
                         ids=["ce", "kd fixed views", "grad_at", "kd live teacher"])
def test_models_trained_together_equal_the_same_models_trained_apart(synthetic, tmp_cache, method, views):
    splits = synthetic.subset(250, 60)  # 250 = 2 batches of 100 and a last one of 50
    teacher = kdlib.build("DeepNN", seed=9).eval()
    cfg = kdlib.Config(epochs=2, batch_size=100, views=views, progress=False)
    together = kdlib.fit_together(_models(), splits, method, teacher, cfg, seeds=SEEDS)
    for run, seed, model in zip(together, SEEDS, _models()):
        alone = kdlib.fit(model, splits, method, teacher, kdlib.Config(**{**vars(cfg), "seed": seed}))
        assert run.config.seed == seed and run.together == len(SEEDS)
        # Weight by weight only nearly: over six Adam steps, a weight whose gradient is ~1e-8
        # moves by another fraction of the rate when its gradient is rounded otherwise (grouped
        # and plain convolutions add in another order): a handful of weights in 262,144 differ
        # by up to lr. Per tensor the difference is float noise; the losses agree to 1e-3.
        for trained, own in zip(run.model.parameters(), alone.model.parameters()):
            assert (trained - own).norm() < 1e-3 * own.norm()  # measured: at most 2.3e-4
        assert [h["train_acc"] for h in run.history] == pytest.approx([h["train_acc"] for h in alone.history])
        assert [h["loss"] for h in run.history] == pytest.approx([h["loss"] for h in alone.history], rel=1e-3)
        assert run.accuracy == pytest.approx(alone.accuracy, abs=1 / 60)


def test_a_members_order_comes_from_its_seed_and_its_time_is_its_share(synthetic):
    splits = synthetic.subset(200, 50)
    cfg = kdlib.Config(epochs=1, batch_size=100, progress=False)
    twins = [_without_dropout(kdlib.build("LightNN", seed=0)) for _ in range(3)]
    runs = kdlib.fit_together(twins, splits, "ce", cfg=cfg, seeds=[0, 0, 1])
    weights = [r.model.features[0].weight for r in runs]
    torch.testing.assert_close(weights[0], weights[1])    # same weights, same seed: same run
    assert not torch.allclose(weights[0], weights[2])     # another seed: another order
    assert runs[0].seconds == runs[2].seconds > 0          # each its share of the group's time
    with pytest.raises(ValueError, match="one seed per model"):
        kdlib.fit_together(_models(), splits, "ce", cfg=cfg, seeds=[0, 1])
    with pytest.raises(ValueError, match="one architecture"):
        Members([kdlib.build("LightNN"), kdlib.build("DeepNN")])


def test_compiled_attention_methods_run_compiled_stages_and_keep_gradient_attention(monkeypatch):
    # Before: compile=True compiled only model(x); the attention methods walked the eager
    # `features`. Now each stage is compiled (inductor swapped for the eager backend here, to
    # test the wiring in seconds), and the logits still depend on every stage output.
    compiled, real_compile = [], torch.compile

    def compile_eagerly(module):
        compiled.append(module)
        return real_compile(module, backend="eager")
    monkeypatch.setattr(torch, "compile", compile_eagerly)
    model = _without_dropout(kdlib.build("LightNN", seed=0)).train()
    x, y = torch.randn(6, 3, 32, 32), torch.randint(0, 10, (6,))
    logits, stages = train._forward(model, True, True)(x)
    assert len(compiled) == 3 and all(isinstance(m, nn.Sequential) for m in compiled)
    eager_logits, eager_stages = kdlib.forward_features(model, x)
    _close(logits, eager_logits)
    maps = kdlib.losses.gradient_attention(logits, y, stages, create_graph=True)
    eager_maps = kdlib.losses.gradient_attention(eager_logits, y, eager_stages, create_graph=True)
    for m, e in zip(maps, eager_maps, strict=True):
        _close(m, e)


def test_stacked_reference_students_train_end_to_end_like_apart_batch_norm_statistics_included(synthetic, tmp_cache):
    splits = synthetic.subset(250, 60)
    cfg = kdlib.Config(epochs=2, batch_size=100, views=2, progress=False, family="reference")
    together = kdlib.fit_together(_models("ReferenceLightNN"), splits, "ce", cfg=cfg, seeds=SEEDS)
    for run, seed, model in zip(together, SEEDS, _models("ReferenceLightNN")):
        alone = kdlib.fit(model, splits, "ce", cfg=kdlib.Config(**{**vars(cfg), "seed": seed}))
        buffers = dict(run.model.named_buffers())
        assert any("running_mean" in name for name in buffers)
        for name, own in alone.model.named_buffers():
            if own.is_floating_point():  # running means and variances, each member its own
                assert (buffers[name] - own).norm() <= 1e-3 * own.norm() + 1e-6, name
            else:
                assert torch.equal(buffers[name], own), name  # batches seen
        for trained, own in zip(run.model.parameters(), alone.model.parameters()):
            # + 2e-4, a tenth of one Adam step at this rate: a tensor of near-zero weights (a
            # bias of norm ~0.01) moves by a fraction of the rate when its ~1e-8 gradients round
            # otherwise (see the test above); a member mixed with another would be off by steps
            assert (trained - own).norm() < 1e-3 * own.norm() + 2e-4
        assert [h["loss"] for h in run.history] == pytest.approx([h["loss"] for h in alone.history], rel=1e-3)
