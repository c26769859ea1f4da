"""The ways to train the student, each declared once: its loss recipe for the one training
engine, and everything tables, plots and reports say about it.

The engine runs the student (with its stage outputs when a recipe says `reads_stages`); a recipe
takes that `Batch` (images, labels, logits, stages, the teacher's targets for exactly these
images, and the method's own trainable `head` if it has one) and the config, and returns its
named, already weighted loss terms *per sample*; the engine averages each over the batch and
sums the terms. (Per sample, so that models trained together, `kdlib.members`, each get the
mean over their own samples.)

    ce          CE(s, y)
    kd          (1 - a) CE(s, y) + a T^2 KL(softmax(t/T) || softmax(s/T))      (Hinton 2015)
    kd_untrained  kd from an untrained teacher: a control (what the reference table measured)
    kd_small_teacher  kd from a teacher trained on the course's 5,000 images only: a control (its extra data)
    ls          CE with label smoothing e: a control, soft targets with no teacher  (Szegedy 2016)
    grad_at     CE(s, y) + b sum_stages mean_n mean_j (G_s - G_t)^2   gradient (saliency) attention
    act_at      CE(s, y) + b sum_stages mean_n mean_j (Q_s - Q_t)^2   squared-activation attention (Zagoruyko 2017)
    kd_grad_at  kd + b sum_stages mean_n mean_j (G_s - G_t)^2
    cosine      (1 - w) CE(s, y) + w (1 - cos(h_s, pool(h_t)))        the PyTorch KD tutorial's hidden-representation loss
    regressor   (1 - w) CE(s, y) + w mean (r(A_s) - A_t)^2            the tutorial's regressor (FitNets' hint, Romero 2015)

with a = cfg.kd_weight, T = cfg.temperature, b = cfg.beta, e = cfg.smoothing, w = cfg.feature_weight;
Q and G are the normalized maps of `kdlib.losses`, compared per sample and position (j) and
averaged over the batch (n); h, A are the student's last feature map (what its classifier
reads) and the teacher's of the same spatial size (`models.hint_stage`); r is a trainable 3x3
convolution from the student's channels to the teacher's, trained with the student and
dropped after (the student keeps its size).

08 and 09 declare KD's variants the same way: the teacher's outputs given another way
(`settings`: on the plain image, fresh views, mixup) and other teachers (`teacher`: the
published teacher's snapshots); `lesson` says which notebook compares them.

A new method is one more `Method` in DECLARED: its table row, plot label, order (the list's),
the maps it transfers and its published numbers come from there.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from .losses import (activation_attention, attention_loss, feature_mse, gradient_attention,
                     hidden_cosine_loss, kd_loss)
from .models import forward_features, hint_stage, stage_shapes, student_architecture, teacher_architecture


@dataclass
class Batch:
    """What a recipe sees of one training step."""

    x: torch.Tensor                    # the normalized, augmented images
    y: torch.Tensor                    # their labels
    logits: torch.Tensor               # the student's logits for x
    stages: list[torch.Tensor] = field(default_factory=list)  # its stage outputs (`reads_stages` recipes)
    targets: dict = field(default_factory=dict)               # the teacher's, for exactly these views
    head: Callable | None = None       # the method's own trainable module (`Method.head`), if any


@dataclass(frozen=True)
class Method:
    name: str
    title: str              # what it is, in words, for the reader of this table (no output prints it)
    needs: tuple[str, ...]  # teacher targets: "logits", "act", "grad" and/or "feat"
    loss: Callable          # (Batch, Config) -> {term: per-sample loss}
    knobs: tuple[str, ...] = ()  # the Config fields only this recipe reads (tables compare the rest)
    reads_stages: bool = False  # whether the loss reads the student's stage outputs
    label: str = ""         # its name in figures
    transfers: str = ""     # the kind of attention map it matches to the teacher's ("act", "grad")
    head: Callable | None = None  # (Config, seed) -> a module trained with the student, then dropped
    control: str = ""       # what a control run changes (its teacher, or no teacher at all)
    control_of: str = ""    # the method whose gain this control tests ("kd")
    # Whom it learns from: "run" (the run's teacher), "untrained" (a teacher of the family with
    # its initial random weights), or a published teacher's file under weights/ ("weights/NAME.pt");
    # the engine builds it (`kdlib.experiment.teacher_of`), so a control is trained by its name alone.
    teacher: str = "run"
    # The Config settings that make the method what it is (08's ways of teaching: the teacher's
    # outputs on the plain image, fresh views, mixup), applied over the run's own
    # (`experiment.method_config`; "epochs": the run's number of epochs); tables compare them as
    # the method's own, like its knobs.
    settings: dict = field(default_factory=dict, hash=False)
    # Which notebooks compare it: "methods" (02-07: the methods and their controls),
    # "consistency" (08: how the teacher's outputs are given), "teachers" (09: which teacher).
    lesson: str = "methods"
    reference: float | None = None   # the reference notebook's accuracy for this row (%)
    reference_untrained: bool = False  # that number came from an untrained teacher
    tutorial: float | None = None    # the PyTorch KD tutorial's accuracy for this row (%)


# ------------------------------------------------------------------------------ recipes

def _ce(batch, cfg):
    return {"ce": F.cross_entropy(batch.logits, batch.y, reduction="none")}


def _label_smoothing(batch, cfg):
    return {"ce": F.cross_entropy(batch.logits, batch.y, label_smoothing=cfg.smoothing, reduction="none")}


def _kd(batch, cfg):
    a = cfg.kd_weight
    return {"ce": (1 - a) * F.cross_entropy(batch.logits, batch.y, reduction="none"),
            "kd": a * kd_loss(batch.logits, batch.targets["logits"], cfg.temperature, reduction="none")}


def matched(student_maps, teacher_maps):
    """Each student stage's map with the teacher's map of the same spatial size (the teacher
    may have more stages: the reference family's has four, its student two)."""
    by_size = {t.shape[-1]: t for t in teacher_maps}
    missing = [m.shape[-1] for m in student_maps if m.shape[-1] not in by_size]
    if missing:
        raise ValueError(f"The teacher has no stage with {missing} positions to match the student's: "
                         f"its stages have {sorted(by_size)}. Attention transfer needs stages of equal size.")
    return [(m, by_size[m.shape[-1]]) for m in student_maps]


def _attention_term(maps, teacher_maps, cfg):
    return cfg.beta * sum(attention_loss(m, t, reduction="none") for m, t in matched(maps, teacher_maps))


def _act_at(batch, cfg):
    maps = [activation_attention(f) for f in batch.stages]
    return {**_ce(batch, cfg), "at": _attention_term(maps, batch.targets["act"], cfg)}


def _student_gradient_maps(batch):
    # create_graph: the attention loss trains the student through its maps.
    return gradient_attention(batch.logits, batch.y, batch.stages, create_graph=True)


def _grad_at(batch, cfg):
    return {**_ce(batch, cfg), "at": _attention_term(_student_gradient_maps(batch), batch.targets["grad"], cfg)}


def _kd_grad_at(batch, cfg):
    return {**_kd(batch, cfg), "at": _attention_term(_student_gradient_maps(batch), batch.targets["grad"], cfg)}


def _with_feature_term(batch, cfg, term):
    w = cfg.feature_weight
    return {"ce": (1 - w) * _ce(batch, cfg)["ce"], "feat": w * term}


def _cosine(batch, cfg):
    return _with_feature_term(batch, cfg, hidden_cosine_loss(batch.stages[-1], batch.targets["feat"], reduction="none"))


def _regressor(batch, cfg):
    mapped = batch.head(batch.stages[-1])
    return _with_feature_term(batch, cfg, feature_mse(mapped, batch.targets["feat"], reduction="none"))


def regressor_head(cfg, seed: int) -> nn.Module:
    """The tutorial's regressor: a 3x3 convolution from the student's last stage's channels to
    the channels of the teacher's stage of the same size (16 -> 32 in the tutorial family),
    its weights drawn from `seed`."""
    channels_in = stage_shapes(student_architecture(cfg.family))[-1][0]
    channels_out = stage_shapes(teacher_architecture(cfg.family))[hint_stage(cfg.family)][0]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return nn.Conv2d(channels_in, channels_out, kernel_size=3, padding=1)


_KD_KNOBS = ("temperature", "kd_weight")


def _lineage(epoch: int) -> Method:
    """KD from the published teacher's own snapshot after `epoch` of its 60 epochs (09)."""
    return Method(f"kd_epoch{epoch:03d}", f"KD from the teacher after {epoch} of its 60 epochs", ("logits",), _kd,
                  _KD_KNOBS, label=f"KD, teacher\nat epoch {epoch}", lesson="teachers",
                  teacher=f"weights/teacher-tutorial-epoch{epoch:03d}.pt")


def _teaching(name: str, title: str, label: str, **settings) -> Method:
    """KD with the teacher's outputs given another way (08): the same loss (half of it CE on the
    labels, as in 03: Beyer et al. train on the teacher's term alone), other Config settings."""
    return Method(name, title, ("logits",), _kd, _KD_KNOBS, label=label, lesson="consistency", settings=settings)


DECLARED = {m.name: m for m in [  # every method of every lesson, in the order of every table and figure
    Method("ce", "cross-entropy only", (), _ce, label="CE", reference=72.35, tutorial=69.86),
    Method("kd", "KD (soft targets)", ("logits",), _kd, _KD_KNOBS, label="KD", tutorial=70.80),
    Method("kd_untrained", "KD from an untrained teacher (control)", ("logits",), _kd, _KD_KNOBS,
           label="KD from\nuntrained", control="an untrained teacher", control_of="kd", teacher="untrained",
           reference=74.54, reference_untrained=True),
    # The teacher that saw only the course's 5,000 student images (weights/teacher-tutorial-5k.md):
    # in the course, what KD gives when teacher and students see the same images.
    Method("kd_small_teacher", "KD from a teacher trained on the course's 5,000 images only (control)", ("logits",),
           _kd, _KD_KNOBS, label="KD, teacher\non 5,000", control="a teacher trained on the course's 5,000 images only",
           control_of="kd", teacher="weights/teacher-tutorial-5k.pt"),
    Method("ls", "label smoothing (control)", (), _label_smoothing, ("smoothing",), label="label\nsmoothing",
           control="no teacher: soft targets alone", control_of="kd"),
    Method("grad_at", "gradient attention", ("grad",), _grad_at, ("beta",), reads_stages=True, label="grad AT",
           transfers="grad", reference=72.50, reference_untrained=True),
    Method("act_at", "squared-activation attention", ("act",), _act_at, ("beta",), reads_stages=True, label="act AT",
           transfers="act", reference=72.69, reference_untrained=True),
    Method("kd_grad_at", "KD + gradient attention", ("logits", "grad"), _kd_grad_at, (*_KD_KNOBS, "beta"),
           reads_stages=True, label="KD + grad AT", transfers="grad", reference=73.29, reference_untrained=True),
    Method("cosine", "cosine loss on the hidden representation", ("feat",), _cosine, ("feature_weight",),
           reads_stages=True, label="cosine\nhidden", tutorial=71.50),
    Method("regressor", "regressor + MSE on feature maps", ("feat",), _regressor, ("feature_weight",),
           reads_stages=True, label="regressor\nMSE", head=regressor_head, tutorial=70.82),
    # 08: consistent teaching (Beyer et al. 2022). The course's KD is consistent on 8 fixed views.
    _teaching("kd_plain", "KD, the teacher's outputs on the plain image (inconsistent)", "KD, teacher\non plain image",
              teacher_views="plain"),
    # A fresh view every epoch, the teacher's outputs on each computed once (V = epochs, view e at
    # epoch e): the live teacher's fresh crops at a quarter of its cost for the course's four seeds.
    _teaching("kd_fresh", "KD on fresh views (one per epoch), the teacher's outputs on each", "KD, fresh\nviews",
              views="epochs", view_order="epoch"),
    # Mixup on kd_fresh's views: each epoch's blends fixed in advance (a partner and weight per
    # view), so the teacher's outputs on them are computed once for every seed, not live per seed.
    _teaching("kd_mixup", "KD on mixup of two images (function matching)", "KD, mixup\n(function matching)",
              views="epochs", view_order="epoch", mixup=True),
    # Their controls: the same inputs without a teacher, so that what more or other inputs give
    # is not credited to the teaching.
    Method("ce_fresh", "CE on fresh views (one per epoch; control)", (), _ce, label="CE, fresh\nviews",
           lesson="consistency", control="no teacher: the fresh views alone", control_of="kd_fresh",
           settings={"views": "epochs", "view_order": "epoch"}),
    Method("ce_mixup", "CE on mixup of two images (control)", (), _ce, label="CE, mixup", lesson="consistency",
           control="no teacher: mixup alone", control_of="kd_mixup",
           settings={"views": "epochs", "view_order": "epoch", "mixup": True}),
    # 09: which teacher. With "kd_untrained", "kd_small_teacher" and "kd" (the final teacher).
    *map(_lineage, (5, 15, 30)),
]}
# 02-07's methods and controls: what 06 compares and the series' tables show.
METHODS = {name: m for name, m in DECLARED.items() if m.lesson == "methods"}
ORDER = ["teacher", *DECLARED]  # the teacher's row first
KNOBS = sorted({k for m in DECLARED.values() for k in m.knobs})


def get(name: str | Method) -> Method:
    if isinstance(name, Method):
        return name
    if name not in DECLARED:
        raise ValueError(f"Unknown method {name!r}: expected one of {list(DECLARED)}.")
    return DECLARED[name]


def label(name: str) -> str:
    """How figures name a row: the method's label, "teacher", or the name itself."""
    return DECLARED[name].label if name in DECLARED else name


def controls(method: str) -> list[str]:
    """The controls declared for `method` (what its gain is tested against besides CE)."""
    return [m.name for m in METHODS.values() if m.control_of == method]


def teaches_here(name: str, family: str, source: str) -> bool:
    """Whether the method's declared teacher exists for this data: a teacher under weights/ is a
    CIFAR-10 teacher of one model family (its file name says which), absent on the synthetic
    smoke data and for the other family."""
    teacher = get(name).teacher
    return not teacher.startswith("weights/") or (source != "synthetic" and f"teacher-{family}" in teacher)


def lesson(name: str) -> list[str]:
    """The methods a lesson declares: "methods" (02-07), "consistency" (08), "teachers" (09)."""
    return [m.name for m in DECLARED.values() if m.lesson == name]


def rows(name: str = "methods") -> list[str]:
    """The methods a lesson's tables show, in the series' order: 08 and 09 show theirs beside CE
    and the course's KD; 09 also beside the two controls that are teachers of another kind."""
    shared = {"methods": [], "consistency": ["ce", "kd"], "teachers": ["ce", "kd", "kd_untrained", "kd_small_teacher"]}
    if name not in shared:
        raise ValueError(f"Unknown lesson {name!r}: expected one of {list(shared)}.")
    return [m for m in DECLARED if m in shared[name] or DECLARED[m].lesson == name]


def transferring() -> list[str]:
    """The methods that transfer attention maps (the ones whose maps 04-06 compare)."""
    return [m.name for m in METHODS.values() if m.transfers]


def member_losses(forward, recipe: Method, x: torch.Tensor, y: torch.Tensor, targets: dict,
                  cfg, members: int = 1, head=None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The logits and, per loss term, each member's batch mean (a tensor of `members` values)
    for the members' batches x, one after another: the one loss path, the engine's and
    `apply`'s. Their sum is the loss the engine minimizes: no member's mean mixes in
    another's samples, so each gets exactly its own gradient."""
    logits, stages = forward(x)
    terms = recipe.loss(Batch(x, y, logits, stages, targets, head), cfg)
    return logits, {name: value.float().view(members, -1).mean(1) for name, value in terms.items()}


def apply(method: str | Method, model, x: torch.Tensor, y: torch.Tensor, targets: dict, cfg, head=None):
    """One model through a recipe, by the engine's own loss path (`member_losses`): its logits
    and the batch mean of each loss term. A method with a trainable head (the regressor) needs
    it given: the one it trains with, e.g. `get(method).head(cfg, seed)`."""
    recipe = get(method)
    if recipe.head is not None and head is None:
        raise ValueError(f"Method {recipe.name!r} trains its own head with the student: pass head=..., e.g. "
                         f"kdlib.methods.get({recipe.name!r}).head(cfg, seed) (an untrained one gives another loss).")
    forward = (lambda x: forward_features(model, x)) if recipe.reads_stages else (lambda x: (model(x), []))
    logits, terms = member_losses(forward, recipe, x, y, targets, cfg, 1, head)
    return logits, {name: value[0] for name, value in terms.items()}
