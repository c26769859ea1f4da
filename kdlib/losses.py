"""Distillation losses and attention maps, each a few lines whose formula is the docstring.

Notation: s, t are student and teacher logits (N, K); A is a feature map (N, C, H, W);
maps are flattened to (N, H*W) and L2-normalized per sample, so teacher and student maps
of the same spatial size compare directly even with different channel counts.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor,
            temperature: float) -> torch.Tensor:
    r"""Hinton et al. (2015) soft-target loss, averaged over the batch.

    .. math:: T^2 \cdot \mathrm{KL}\big(\mathrm{softmax}(t/T)\,\|\,\mathrm{softmax}(s/T)\big)

    The T^2 keeps its gradients on the scale of the cross-entropy term as T grows.
    """
    T = temperature
    return F.kl_div(F.log_softmax(student_logits.float() / T, dim=1),
                    F.log_softmax(teacher_logits.float() / T, dim=1),
                    reduction="batchmean", log_target=True) * T * T


def activation_attention(features: torch.Tensor) -> torch.Tensor:
    r"""Zagoruyko & Komodakis (2017) attention map: :math:`Q = \mathrm{vec}(\tfrac{1}{C}\sum_c A_c^2)`, :math:`Q/\|Q\|_2`."""
    return F.normalize(features.float().pow(2).mean(1).flatten(1), dim=1)


def gradient_attention(loss: torch.Tensor, features: list[torch.Tensor],
                       create_graph: bool = False) -> list[torch.Tensor]:
    r"""Saliency maps of feature maps: the attention map of the loss's gradient with respect to each.

    .. math:: G = \partial \mathcal{L}_{CE} / \partial A, \quad Q = \mathrm{vec}(\tfrac{1}{C}\sum_c G_c^2), \quad Q/\|Q\|_2

    One backward pass serves all feature maps. Pass the *summed* cross-entropy so that
    each sample's gradient is its own. For the student, `create_graph=True` keeps the graph
    so that a loss on the maps trains it.
    """
    grads = torch.autograd.grad(loss, list(features), create_graph=create_graph)
    return [activation_attention(g) for g in grads]


def attention_loss(student_map: torch.Tensor, teacher_map: torch.Tensor) -> torch.Tensor:
    r"""Mean squared difference of two normalized maps: :math:`\tfrac{1}{N\,HW}\sum (Q_s - Q_t)^2`."""
    return (student_map - teacher_map.to(student_map.dtype)).pow(2).mean()


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
