"""The arithmetic the published CPU runs used: bf16 autocast (on CPUs with native bf16 and
on Ampere-or-later GPUs). Autocast runs on any CPU (emulated where not native, slower but the
same arithmetic), so these tests run everywhere, though conftest keeps every other test in
float32. Tolerances: bf16 keeps 8 bits of mantissa (relative rounding 2^-8 = 0.4%). Measured
here (2-core AMD EPYC, torch 2.14.1): teacher logits within 0.6% of their largest magnitude,
attention maps at cosine >= 0.997 (gradient) and 0.99999 (activation), the attention term's
gradient at cosine 0.991 with float32's; the bounds below leave a margin above those."""

from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F

import kdlib
from kdlib import methods
from kdlib.config import autocast, precision

BF16 = kdlib.Config(epochs=1, batch_size=64, views=1, amp="bf16", progress=False)
LOGIT_RTOL = 0.03      # teacher logits, bf16 against float32, relative to their largest magnitude
MAP_COSINE = 0.99      # per-sample cosine of a bf16 attention map with the float32 one
GRAD_COSINE = 0.95     # the attention term's gradient, bf16 against float32


def test_bf16_is_what_a_run_with_amp_bf16_uses():
    assert precision(torch.device("cpu"), "bf16") == "bf16"
    assert kdlib.identity.of_run(BF16)["precision"] == "bf16"
    student = kdlib.build("LightNN", seed=0)
    with autocast(torch.device("cpu"), "bf16"):
        assert student(torch.randn(2, 3, 32, 32)).dtype == torch.bfloat16
    with autocast(torch.device("cpu"), "off"):
        assert student(torch.randn(2, 3, 32, 32)).dtype == torch.float32


def test_teacher_targets_in_bf16_are_close_to_float32(synthetic, tmp_cache):
    teacher = kdlib.build("DeepNN", synthetic.num_classes, seed=2).eval()
    low = kdlib.teacher_targets(teacher, synthetic, BF16)
    full = kdlib.teacher_targets(teacher, synthetic, replace(BF16, amp="off"))
    assert torch.isfinite(low.logits).all()
    assert not torch.equal(low.logits, full.logits)  # bf16 really ran: close to float32, not equal
    assert (low.logits - full.logits).abs().max() <= LOGIT_RTOL * full.logits.abs().max()
    for kind in ("act", "grad"):
        for a, b in zip(getattr(low, kind), getattr(full, kind)):
            cosine = F.cosine_similarity(a.float().flatten(0, 1), b.float().flatten(0, 1), dim=1)
            assert cosine.min() > MAP_COSINE, (kind, float(cosine.min()))


@pytest.mark.parametrize("method", ["grad_at", "kd_grad_at", "regressor"])
def test_one_bf16_epoch_trains_with_finite_losses(method, synthetic, tmp_cache):
    teacher = kdlib.build("DeepNN", synthetic.num_classes, seed=2).eval()
    before = kdlib.build("LightNN", synthetic.num_classes, seed=0)
    run = kdlib.fit(kdlib.build("LightNN", synthetic.num_classes, seed=0), synthetic, method, teacher, BF16)
    row = run.history[0]
    assert all(torch.isfinite(torch.tensor(v)) for k, v in row.items() if k.startswith("loss"))
    assert run.metrics["accuracy"] > 0 and all(torch.isfinite(p).all() for p in run.model.parameters())
    moved = [not torch.equal(a, b.cpu()) for a, b in zip(before.parameters(), run.model.parameters())]
    assert all(moved)


def test_gradient_attention_reaches_the_student_in_bf16():
    """The double backward under autocast: the attention term alone gives every student
    convolution before the last stage a finite, non-zero gradient, close in direction to float32's."""
    teacher = kdlib.build("DeepNN", seed=2).eval()
    generator = torch.Generator().manual_seed(0)
    x, y = torch.randn(16, 3, 32, 32, generator=generator), torch.randint(0, 10, (16,), generator=generator)
    targets = kdlib.targets.distillation_targets(teacher, x, y, ("grad",))
    grads = {}
    for amp in ("bf16", "off"):
        student = kdlib.build("LightNN", seed=0).eval()
        with autocast(torch.device("cpu"), amp):
            _, terms = methods.apply("grad_at", student, x, y, targets, replace(BF16, amp=amp))
        convs = [m.weight for m in student.modules() if isinstance(m, torch.nn.Conv2d)]
        grads[amp] = torch.autograd.grad(terms["at"], convs)
    for low, full in zip(grads["bf16"], grads["off"]):
        assert torch.isfinite(low).all() and low.abs().sum() > 0
        assert F.cosine_similarity(low.flatten().float(), full.flatten(), dim=0) > GRAD_COSINE
