"""Distillation losses and attention maps, each a few lines whose formula is the docstring.

Notation: s, t are student and teacher logits (N, K); A is a feature map (N, C, H, W);
maps are flattened to (N, H*W) and L2-normalized per sample, so teacher and student maps
of the same spatial size compare directly even with different channel counts.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _at_least_float32(x: torch.Tensor) -> torch.Tensor:
    """x in float32, or in its own dtype if wider: bf16/float16 activations are computed on in
    float32 (a sum of squares loses too much in bf16), float64 stays float64 (gradcheck)."""
    return x.to(torch.promote_types(x.dtype, torch.float32))


def kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor,
            temperature: float, reduction: str = "mean") -> torch.Tensor:
    r"""Hinton et al. (2015) soft-target loss, averaged over the batch ("none": per sample).

    .. math:: T^2 \cdot \mathrm{KL}\big(\mathrm{softmax}(t/T)\,\|\,\mathrm{softmax}(s/T)\big)

    The T^2 keeps its gradients on the scale of the cross-entropy term as T grows.
    """
    T = temperature
    per_sample = F.kl_div(F.log_softmax(_at_least_float32(student_logits) / T, dim=1),
                          F.log_softmax(_at_least_float32(teacher_logits).to(_at_least_float32(student_logits).dtype) / T, dim=1),
                          reduction="none", log_target=True).sum(1) * T * T
    return _reduce(per_sample, reduction)


def activation_attention(features: torch.Tensor) -> torch.Tensor:
    r"""Zagoruyko & Komodakis (2017) attention map: :math:`Q = \mathrm{vec}(\tfrac{1}{C}\sum_c A_c^2)`, :math:`Q/\|Q\|_2`.

    A sample whose map is all zero (no activation, or no gradient) keeps the zero map: see
    `has_map`."""
    return F.normalize(_at_least_float32(features).pow(2).mean(1).flatten(1), dim=1)


def ce_logit_gradient(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    r"""The gradient of each sample's cross-entropy with respect to its logits,
    :math:`\partial \mathrm{CE}/\partial z = \mathrm{softmax}(z) - e_y`.

    The true class's entry is computed as :math:`-\sum_{j \ne y} p_j`, not :math:`p_y - 1`:
    once a confident sample's :math:`p_y` rounds to 1 in float32, :math:`p_y - 1` is 0 or
    off by half, and the map would point the wrong way."""
    p = _at_least_float32(logits).softmax(1)
    others = p.scatter(1, labels[:, None], 0.0)
    return (others - others.sum(1, keepdim=True) * F.one_hot(labels, p.shape[1])).to(logits.dtype)


def gradient_attention(logits: torch.Tensor, labels: torch.Tensor, features: list[torch.Tensor],
                       create_graph: bool = False) -> list[torch.Tensor]:
    r"""Saliency maps of feature maps: the attention map of the cross-entropy's gradient with
    respect to each (every sample's own loss, through the logits at once: one backward pass
    where samples do not interact, as in eval mode; a train-mode BatchNorm couples them, and
    then each sample's map also carries the others' gradients through the batch statistics).

    .. math:: G = \partial \mathrm{CE}(z, y) / \partial A, \quad \hat G = G / \max|G|, \quad
              Q = \mathrm{vec}(\tfrac{1}{C}\sum_c \hat G_c^2), \quad Q/\|Q\|_2

    Each sample's gradient is divided by its own largest entry before squaring. The map does
    not depend on that scale, but without it a confident sample's map vanished: its gradient
    shrinks like 1 - p, its square underflowed and the normalization fell back to its eps
    floor (a map of norm 0.42 with the true logit raised by 10, 0.000 by 15). Only a gradient
    that is exactly zero now gives no map (`has_map` is False; `attention_loss` leaves it out).

    For the student, `create_graph=True` keeps the graph so that a loss on the maps trains it
    (a second-order backward pass).
    """
    grads = torch.autograd.grad(logits, list(features), grad_outputs=ce_logit_gradient(logits, labels),
                                create_graph=create_graph)
    return [activation_attention(_unit_max(g)) for g in grads]


def _unit_max(g: torch.Tensor) -> torch.Tensor:
    # The scale is detached: Q is the same for any positive scale, so no gradient is lost.
    scale = g.detach().abs().amax(dim=tuple(range(1, g.dim())), keepdim=True)
    return g / scale.clamp_min(torch.finfo(g.dtype).tiny)


def has_map(maps: torch.Tensor) -> torch.Tensor:
    """Which samples have an attention map: normalized maps have norm 1, missing ones are zero."""
    return maps.detach().float().norm(dim=1) > 0.5


def attention_loss(student_map: torch.Tensor, teacher_map: torch.Tensor,
                   reduction: str = "mean") -> torch.Tensor:
    r"""Mean over samples ("none": per sample) of the mean squared difference of two normalized
    maps, :math:`\tfrac{1}{N}\sum_n \tfrac{1}{HW}\sum_j (Q_{s,nj} - Q_{t,nj})^2`, where a sample
    without both maps (`has_map`) adds 0: there is nothing to match."""
    teacher_map = teacher_map.to(student_map.dtype)
    both = has_map(student_map) & has_map(teacher_map)
    return _reduce((student_map - teacher_map).pow(2).mean(1) * both, reduction)


def hidden_cosine_loss(student_hidden: torch.Tensor, teacher_hidden: torch.Tensor,
                       reduction: str = "mean") -> torch.Tensor:
    r"""The PyTorch KD tutorial's cosine loss on hidden representations: one minus the cosine
    of the student's flattened feature map :math:`h_s` (N, D) and the teacher's :math:`h_t`
    (N, D') average-pooled to D values (the tutorial pools 2,048 to 1,024 by pairs),

    .. math:: 1 - \frac{h_s \cdot \mathrm{pool}(h_t)}{\|h_s\|\,\|\mathrm{pool}(h_t)\|}

    (torch's CosineEmbeddingLoss with target 1, per sample)."""
    student_hidden = _at_least_float32(student_hidden.flatten(1))
    pooled = F.adaptive_avg_pool1d(teacher_hidden.flatten(1).unsqueeze(1).to(student_hidden.dtype),
                                   student_hidden.shape[1]).squeeze(1)
    return _reduce(1 - F.cosine_similarity(student_hidden, pooled, dim=1), reduction)


def feature_mse(mapped: torch.Tensor, teacher_features: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    r"""The tutorial's regressor loss (FitNets' hint loss, Romero et al. 2015): the mean squared
    difference of the student's feature map mapped onto the teacher's shape by a trainable
    regressor, :math:`r(A_s)`, and the teacher's feature map :math:`A_t` (N, C, H, W),
    :math:`\tfrac{1}{CHW}\sum (r(A_s) - A_t)^2` per sample."""
    mapped = _at_least_float32(mapped)
    return _reduce((mapped - teacher_features.reshape(mapped.shape).to(mapped.dtype)).pow(2).flatten(1).mean(1),
                   reduction)


def _reduce(per_sample: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction not in ("mean", "none"):
        raise ValueError(f"reduction must be 'mean' or 'none', not {reduction!r}.")
    return per_sample.mean() if reduction == "mean" else per_sample


def reference_gradient_attention(features: torch.Tensor, logits: torch.Tensor,
                                 labels: torch.Tensor) -> torch.Tensor:
    r"""The reference notebook's gradient map, kept to show what its table measured: the
    channel mean of :math:`|\partial\,\overline{\mathrm{CE}} / \partial A|` (N, 1, H, W), read off
    `features.grad` after a backward pass of the batch-mean cross-entropy *without*
    `create_graph`.

    Two things follow, both tested: the map is a plain tensor with no graph, so a loss on it
    sends no gradient into the model; and the backward pass that made it has already added
    the whole cross-entropy gradient into the model's `.grad`. A reference step with weights
    0.75 CE + 0.25 MSE(maps) is therefore a CE step with weight 1.75. Compare
    `gradient_attention`, whose maps stay in the graph (`create_graph=True`)."""
    features.retain_grad()
    F.cross_entropy(logits, labels).backward(retain_graph=True)
    grad, features.grad = features.grad, None
    return grad.abs().mean(1, keepdim=True)


def expected_calibration_error(probabilities: torch.Tensor, labels: torch.Tensor,
                               bins: int = 15) -> float:
    r"""ECE: :math:`\sum_b \tfrac{|B_b|}{N}\,|\mathrm{acc}(B_b) - \mathrm{conf}(B_b)|` over equal-width confidence bins."""
    confidence, prediction = probabilities.max(1)
    correct = (prediction == labels).float()
    bin_index = (confidence * bins).long().clamp_(max=bins - 1)
    count = torch.bincount(bin_index, minlength=bins).float()
    gap = (torch.bincount(bin_index, correct, minlength=bins)
           - torch.bincount(bin_index, confidence, minlength=bins)).abs()
    return float(gap.sum() / count.sum())
