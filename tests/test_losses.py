import math

import pytest
import torch
import torch.nn.functional as F

import kdlib
from kdlib.losses import (activation_attention, attention_loss, expected_calibration_error,
                          gradient_attention, kd_loss)


def test_kd_loss_matches_a_hand_computed_value():
    student = torch.tensor([[0.0, 0.0]])
    teacher = torch.tensor([[2.0, 0.0]])
    T = 2.0
    p = [math.exp(1) / (math.exp(1) + 1), 1 / (math.exp(1) + 1)]  # softmax([2, 0] / 2)
    expected = T * T * sum(pi * math.log(pi / 0.5) for pi in p)
    assert kd_loss(student, teacher, T).item() == pytest.approx(expected, rel=1e-5)


def test_kd_loss_is_zero_for_equal_logits_and_averages_over_the_batch():
    z = torch.randn(5, 10)
    assert kd_loss(z, z, 4.0).item() == pytest.approx(0.0, abs=1e-6)
    s, t = torch.randn(1, 10), torch.randn(1, 10)
    one = kd_loss(s, t, 3.0)
    assert kd_loss(s.repeat(4, 1), t.repeat(4, 1), 3.0).item() == pytest.approx(one.item(), rel=1e-5)


def test_activation_attention_is_the_normalized_channel_mean_of_squares():
    features = torch.tensor([[[[1.0, 2.0]], [[3.0, 0.0]]]])  # (N=1, C=2, H=1, W=2)
    q = torch.tensor([(1 + 9) / 2, (4 + 0) / 2])  # [5, 2]
    expected = q / q.norm()
    torch.testing.assert_close(activation_attention(features), expected[None])
    maps = activation_attention(torch.randn(4, 8, 5, 5))
    assert maps.shape == (4, 25)
    torch.testing.assert_close(maps.norm(dim=1), torch.ones(4))


def test_gradient_attention_is_the_attention_map_of_each_samples_ce_gradient():
    a = torch.randn(3, 2, 4, 4, requires_grad=True)
    weights = torch.randn(32, 5)
    logits, y = a.flatten(1) @ weights, torch.tensor([0, 4, 2])
    (maps,) = gradient_attention(logits, y, [a])
    # By hand: d CE_n / d a_n = (softmax(z_n) - e_y) W^T, sample by sample.
    by_hand = ((logits.softmax(1) - F.one_hot(y, 5)) @ weights.T).view(3, 2, 4, 4)
    torch.testing.assert_close(maps, activation_attention(by_hand.detach()))
    # ... which is also what autograd gives for the summed cross-entropy.
    logits = a.flatten(1) @ weights
    (summed,) = torch.autograd.grad(F.cross_entropy(logits, y, reduction="sum"), [a])
    torch.testing.assert_close(maps, activation_attention(summed))
    assert not maps.requires_grad


def test_attention_loss_is_the_mean_squared_difference():
    s = torch.tensor([[1.0, 0.0]])
    t = torch.tensor([[0.0, 1.0]])
    assert attention_loss(s, t).item() == pytest.approx(1.0)
    assert attention_loss(s, s).item() == 0


def test_expected_calibration_error_by_hand():
    # Two samples at confidence 0.9 (one right) and two at 0.6 (both right), in separate bins.
    probs = torch.tensor([[0.9, 0.1], [0.9, 0.1], [0.6, 0.4], [0.6, 0.4]])
    labels = torch.tensor([0, 1, 0, 0])
    expected = 0.5 * abs(0.5 - 0.9) + 0.5 * abs(1.0 - 0.6)
    assert expected_calibration_error(probs, labels, bins=10) == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("method", ["grad_at", "act_at", "kd_grad_at"])
def test_the_attention_term_alone_trains_the_first_convolution(method):
    student, teacher = kdlib.LightNN(), kdlib.DeepNN().eval()
    x, y = torch.randn(8, 3, 32, 32), torch.randint(0, 10, (8,))
    recipe = kdlib.methods.get(method)
    targets = kdlib.targets.distillation_targets(teacher, x, y, recipe.needs)
    _, terms = kdlib.methods.apply(recipe, student, x, y, targets, kdlib.Config())
    terms["at"].backward()
    grad = student.features[0].weight.grad
    assert grad is not None and grad.abs().sum() > 0


def _stage_maps(shift: float):
    """Gradient maps of a DeepNN's two stages with the true-class logit raised by `shift`."""
    teacher = kdlib.build("DeepNN", seed=0).eval()
    x, y = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(0)), torch.tensor([0, 3, 5, 9])
    logits, stages = kdlib.forward_features(teacher, x)
    return gradient_attention(logits + shift * F.one_hot(y, 10), y, stages)


@pytest.mark.parametrize("shift", [10.0, 15.0, 30.0])
def test_gradient_maps_do_not_vanish_on_confident_samples(shift):
    # Raising the true logit scales every sample's gradient by about 1 - p, the same factor
    # everywhere: the map must not change. Before the fix, the squared gradient underflowed
    # and the "unit" map had norm 0.42 at +10 and 0.000 at +15.
    for plain, confident in zip(_stage_maps(0.0), _stage_maps(shift)):
        torch.testing.assert_close(confident.norm(dim=1), torch.ones(4))
        torch.testing.assert_close(confident, plain, rtol=1e-3, atol=1e-4)


def test_a_sample_without_gradient_has_no_map_and_is_left_out_of_the_loss():
    a = torch.randn(3, 2, 4, 4, requires_grad=True)
    w = torch.randn(3, 2, 4, 4)
    w[1] = 0  # sample 1's logits do not depend on its features: zero gradient
    logits = (a * w).flatten(1)[:, :10]
    (maps,) = gradient_attention(logits, torch.tensor([1, 2, 3]), [a])
    assert kdlib.losses.has_map(maps).tolist() == [True, False, True]
    student = torch.rand(3, 16)
    student = student / student.norm(dim=1, keepdim=True)
    per_sample = attention_loss(student, maps, reduction="none")
    torch.testing.assert_close(per_sample[[0, 2]], (student[[0, 2]] - maps[[0, 2]]).pow(2).mean(1))
    assert per_sample[1].item() == 0  # nothing to match: the sample adds nothing
    torch.testing.assert_close(attention_loss(student, maps), per_sample.mean())
    assert attention_loss(student, torch.zeros(3, 16)).item() == 0  # no map at all: no term


def test_the_kd_recipe_distils_the_teachers_logits():
    x, y = torch.randn(6, 3, 32, 32), torch.randint(0, 10, (6,))
    student, cfg = kdlib.LightNN().eval(), kdlib.Config(temperature=3.0, kd_weight=0.4)
    teacher_logits = torch.randn(6, 10)
    logits, terms = kdlib.methods.apply("kd", student, x, y, {"logits": teacher_logits}, cfg)
    torch.testing.assert_close(terms["kd"], 0.4 * kd_loss(logits, teacher_logits, 3.0))
    _, same = kdlib.methods.apply("kd", student, x, y, {"logits": logits.detach()}, cfg)
    assert same["kd"].abs().item() < 1e-5  # a teacher that agrees exactly teaches nothing new


def test_the_label_smoothing_control_is_cross_entropy_against_smoothed_labels():
    x, y = torch.randn(5, 3, 32, 32), torch.randint(0, 10, (5,))
    student = kdlib.LightNN().eval()
    recipe = kdlib.methods.get("ls")
    logits, terms = kdlib.methods.apply(recipe, student, x, y, {}, kdlib.Config(smoothing=0.2))
    smoothed = 0.8 * F.one_hot(y, 10) + 0.2 / 10
    torch.testing.assert_close(terms["ce"], -(smoothed * logits.log_softmax(1)).sum(1).mean())
    _, plain = kdlib.methods.apply(recipe, student, x, y, {}, kdlib.Config(smoothing=0.0))
    torch.testing.assert_close(plain["ce"], F.cross_entropy(logits, y))


def test_the_reference_gradient_attention_sends_no_gradient_into_the_student():
    student = kdlib.build("ReferenceLightNN", seed=0)
    x, y = torch.randn(8, 3, 32, 32), torch.randint(0, 10, (8,))
    logits, stages = kdlib.forward_features(student, x)
    (ce_grad,) = torch.autograd.grad(F.cross_entropy(logits, y), [student.features[0].bias], retain_graph=True)

    reference = kdlib.losses.reference_gradient_attention(stages[-1], logits, y)  # 8x8, as the reference
    assert reference.shape == (8, 1, 8, 8)
    assert not reference.requires_grad  # a plain tensor: a loss on it cannot train the student
    target = torch.rand(8, 1, 2, 2)
    term = F.mse_loss(F.avg_pool2d(reference, 4), target)
    assert not term.requires_grad
    # ...while the backward pass that made the map left the whole CE gradient in .grad:
    torch.testing.assert_close(student.features[0].bias.grad, ce_grad)

    # This series' maps stay in the graph: the same kind of term does train the student.
    student.zero_grad()
    logits, stages = kdlib.forward_features(student, x)
    (ours,) = gradient_attention(logits, y, stages[-1:], create_graph=True)
    attention_loss(ours, torch.rand(8, 64)).backward()
    assert student.features[0].bias.grad.abs().sum() > 0


def test_gradient_attention_and_the_attention_loss_pass_gradcheck_in_float64():
    torch.manual_seed(0)
    weight = torch.randn(10, 2 * 4 * 4, dtype=torch.float64)
    features = torch.randn(3, 2, 4, 4, dtype=torch.float64, requires_grad=True)
    labels = torch.tensor([1, 4, 7])
    teacher = F.normalize(torch.rand(3, 16, dtype=torch.float64), dim=1)

    def loss(a):
        logits = a.flatten(1) @ weight.T
        (maps,) = gradient_attention(logits, labels, [a], create_graph=True)
        assert maps.dtype == torch.float64  # the losses keep a float64 input's precision
        return attention_loss(maps, teacher)
    assert torch.autograd.gradcheck(loss, (features,), eps=1e-6, atol=1e-6)


def test_the_attention_loss_gradient_points_from_the_student_map_to_the_teachers():
    student = F.normalize(torch.rand(2, 16), dim=1).requires_grad_()
    teacher = F.normalize(torch.rand(2, 16), dim=1)
    attention_loss(student, teacher).backward()
    # d/dQs of mean_n mean_j (Qs - Qt)^2 = 2 (Qs - Qt) / (N * HW): a step against it moves towards the teacher
    torch.testing.assert_close(student.grad, 2 * (student.detach() - teacher) / (2 * 16))
    stepped = student.detach() - 10 * student.grad
    assert attention_loss(stepped, teacher) < attention_loss(student.detach(), teacher)
