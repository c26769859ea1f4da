"""The five ways to train the student, each a loss recipe for the one training engine.

A recipe takes the model, a batch (x, y), the teacher's targets for that batch and the
config, and returns the logits and its named, already weighted loss terms; the engine sums
the terms. `needs` says which teacher targets the engine must provide; `knobs` which Config
fields the recipe reads beyond the shared recipe (results compare runs on everything else):

    ce          CE(s, y)
    kd          (1 - a) CE(s, y) + a T^2 KL(softmax(t/T) || softmax(s/T))      (Hinton 2015)
    grad_at     CE(s, y) + b sum_stages mean_n mean_j (G_s - G_t)^2   gradient (saliency) attention
    act_at      CE(s, y) + b sum_stages mean_n mean_j (Q_s - Q_t)^2   squared-activation attention (Zagoruyko 2017)
    kd_grad_at  kd + b sum_stages mean_n mean_j (G_s - G_t)^2
    ls          CE with label smoothing e: a control, soft targets with no teacher  (Szegedy 2016)

with a = cfg.kd_weight, T = cfg.temperature, b = cfg.beta, e = cfg.smoothing; Q and G are the normalized maps
of `kdlib.losses`, compared per sample and position (j) and averaged over the batch (n).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch.nn.functional as F

from .losses import activation_attention, attention_loss, gradient_attention, kd_loss
from .models import forward_features


@dataclass(frozen=True)
class Method:
    name: str
    title: str
    needs: tuple[str, ...]  # teacher targets: "logits", "act" and/or "grad"
    loss: Callable
    knobs: tuple[str, ...] = ()  # the Config fields only this recipe reads


def _ce(model, x, y, targets, cfg):
    logits = model(x)
    return logits, {"ce": F.cross_entropy(logits, y)}


def _label_smoothing(model, x, y, targets, cfg):
    logits = model(x)
    return logits, {"ce": F.cross_entropy(logits, y, label_smoothing=cfg.smoothing)}


def _kd(model, x, y, targets, cfg):
    logits = model(x)
    return logits, _kd_terms(logits, y, targets, cfg)


def _kd_terms(logits, y, targets, cfg):
    a = cfg.kd_weight
    return {"ce": (1 - a) * F.cross_entropy(logits, y),
            "kd": a * kd_loss(logits, targets["logits"], cfg.temperature)}


def matched(student_maps, teacher_maps):
    """Each student stage's map with the teacher's map of the same spatial size (the teacher
    may have more stages: the reference family's has four, its student two)."""
    by_size = {t.shape[-1]: t for t in teacher_maps}
    missing = [m.shape[-1] for m in student_maps if m.shape[-1] not in by_size]
    if missing:
        raise ValueError(f"The teacher has no stage with {missing} positions to match the student's: "
                         f"its stages have {sorted(by_size)}. Attention transfer needs stages of equal size.")
    return [(m, by_size[m.shape[-1]]) for m in student_maps]


def _act_at(model, x, y, targets, cfg):
    logits, stages = forward_features(model, x)
    maps = [activation_attention(f) for f in stages]
    at = sum(attention_loss(m, t) for m, t in matched(maps, targets["act"]))
    return logits, {"ce": F.cross_entropy(logits, y), "at": cfg.beta * at}


def _student_gradient_maps(logits, y, stages):
    # create_graph: the attention loss trains the student through its maps.
    return gradient_attention(logits, y, stages, create_graph=True)


def _grad_at(model, x, y, targets, cfg):
    logits, stages = forward_features(model, x)
    maps = _student_gradient_maps(logits, y, stages)
    at = sum(attention_loss(m, t) for m, t in matched(maps, targets["grad"]))
    return logits, {"ce": F.cross_entropy(logits, y), "at": cfg.beta * at}


def _kd_grad_at(model, x, y, targets, cfg):
    logits, stages = forward_features(model, x)
    maps = _student_gradient_maps(logits, y, stages)
    at = sum(attention_loss(m, t) for m, t in matched(maps, targets["grad"]))
    return logits, {**_kd_terms(logits, y, targets, cfg), "at": cfg.beta * at}


METHODS = {m.name: m for m in [
    Method("ce", "cross-entropy only", (), _ce),
    Method("kd", "KD (soft targets)", ("logits",), _kd, ("temperature", "kd_weight")),
    Method("grad_at", "gradient attention", ("grad",), _grad_at, ("beta",)),
    Method("act_at", "squared-activation attention", ("act",), _act_at, ("beta",)),
    Method("kd_grad_at", "KD + gradient attention", ("logits", "grad"), _kd_grad_at,
           ("temperature", "kd_weight", "beta")),
    Method("ls", "label smoothing (control)", (), _label_smoothing, ("smoothing",)),
]}


KNOBS = sorted({k for m in METHODS.values() for k in m.knobs})


def get(name: str | Method) -> Method:
    if isinstance(name, Method):
        return name
    if name not in METHODS:
        raise ValueError(f"Unknown method {name!r}: expected one of {list(METHODS)}.")
    return METHODS[name]
