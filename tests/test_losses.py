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


def test_gradient_attention_is_the_attention_map_of_the_gradient():
    a = torch.randn(2, 3, 4, 4, requires_grad=True)
    w = torch.randn(2, 3, 4, 4)
    loss = (a * w).sum()  # d loss / d a = w
    (maps,) = gradient_attention(loss, [a])
    torch.testing.assert_close(maps, activation_attention(w))
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
    targets = kdlib.train.distillation_targets(teacher, x, y, recipe.needs)
    _, terms = recipe.loss(student, x, y, targets, kdlib.Config())
    terms["at"].backward()
    grad = student.features[0].weight.grad
    assert grad is not None and grad.abs().sum() > 0
