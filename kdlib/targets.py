"""The teacher's side of distillation: the fixed views of every training image, and the
teacher's logits, attention maps and feature map for each of them, computed once (and cached)
so that a student epoch looks them up instead of running the teacher.

    make_views(n, cfg)                        -> (N, V, 3) crop offsets and flips
    make_mixing(n, cfg)                       -> mixup partners and weights of every view, or None
    target_views(n, cfg)                      -> the views the teacher's targets are computed on
    teacher_targets(teacher, splits, cfg)     -> Targets
    distillation_targets(model, x, y, needs)  -> a model's logits, maps and features for one batch
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from . import data, identity
from .config import Config, autocast, precision, resolve_device
from .files import digest, read_cache, save_tensors, weights_digest
from .losses import activation_attention, gradient_attention
from .models import forward_features, hint_stage

@dataclass
class Targets:
    """Teacher outputs for every (image, view): logits (N, V, K); maps (N, V, H*W) per stage;
    feat (N, V, C*H*W), the feature map of the stage the feature methods match
    (`models.hint_stage`). `teacher` and `data` are the digests of the weights and training
    images they came from."""

    views: torch.Tensor                               # (N, V, 3) crop offsets and flip
    logits: torch.Tensor | None = None
    act: list[torch.Tensor] = field(default_factory=list)
    grad: list[torch.Tensor] = field(default_factory=list)
    teacher: str = ""
    data: str = ""
    feat: torch.Tensor | None = None
    partners: torch.Tensor | None = None              # (N, V) with mixup: each view blended with this image's
    weights: torch.Tensor | None = None               # (N, V) same view at this weight (`make_mixing`)

    def to(self, device) -> "Targets":
        return Targets(self.views.to(device), _moved(self.logits, device),
                       [m.to(device) for m in self.act], [m.to(device) for m in self.grad],
                       self.teacher, self.data, _moved(self.feat, device),
                       _moved(self.partners, device), _moved(self.weights, device))

    def check(self, splits: data.Splits, cfg: Config, teacher: nn.Module | None = None,
              needs=()) -> None:
        """Raise ValueError unless these are the targets for exactly these images, views and
        teacher, and hold what `needs` names."""
        held = {"logits": self.logits is not None, "act": bool(self.act), "grad": bool(self.grad),
                "feat": self.feat is not None}
        wrong = [f"a method that needs no {name!r}" for name in needs if not held[name]]
        if self.data != splits.fingerprint:
            wrong.append("another training set")
        if not torch.equal(self.views.cpu(), target_views(len(splits.y_train), cfg)):
            wrong.append(f"other views (this run: augment={cfg.augment}, views={cfg.views}, "
                         f"view_seed={cfg.view_seed})")
        if not _same_mixing((self.partners, self.weights), make_mixing(len(splits.y_train), cfg)):
            wrong.append(f"other mixup (this run: mixup={cfg.mixup})")
        if teacher is not None and self.teacher != weights_digest(teacher):
            wrong.append("another teacher")
        if wrong:
            raise ValueError(f"The teacher targets given to fit were computed for {' and '.join(wrong)}. "
                             "Leave `targets` out (fit computes them), or compute them with "
                             "kdlib.teacher_targets(teacher, splits, cfg) for this run's data and config.")

    def gather(self, index: torch.Tensor, view: torch.Tensor) -> dict:
        out = {}
        for name in ("logits", "feat"):
            if getattr(self, name) is not None:
                out[name] = getattr(self, name)[index, view].float()
        for name in ("act", "grad"):
            if getattr(self, name):
                out[name] = [m[index, view].float() for m in getattr(self, name)]
        return out


def _moved(tensor, device):
    return None if tensor is None else tensor.to(device)


def make_views(n: int, cfg: Config) -> torch.Tensor:
    """The fixed view table (N, V, 3): identity views without augmentation. With
    `view_order = "epoch"` (a view per epoch) drawn view by view, so that a longer schedule's
    table begins with a shorter one's and the teacher's targets for it are reused (`teacher_targets`)."""
    if not cfg.augment:
        return data.identity_views(n).unsqueeze(1)
    generator = torch.Generator().manual_seed(cfg.view_seed)
    if cfg.view_order == "epoch":
        return torch.stack([data.random_views(n, generator) for _ in range(cfg.views)], 1)
    return data.random_views(n * cfg.views, generator).view(n, cfg.views, 3)


MIXING_SEED = 1_000_003  # added to view_seed: mixup's draws are not the views' draws


def make_mixing(n: int, cfg: Config) -> tuple[torch.Tensor, torch.Tensor] | None:
    """With mixup on fixed views, each view's partner image and weight, (N, V) each
    (`data.mix_table`): the same for every seed, so the teacher's outputs on the blends are
    computed once for all of them. None without mixup, or with fresh views (mixed live)."""
    if not (cfg.mixup and cfg.fixed_views):
        return None
    return data.mix_table(n, cfg.views, torch.Generator().manual_seed(cfg.view_seed + MIXING_SEED))


def _same_mixing(held, wanted) -> bool:
    if wanted is None:
        return held[0] is None
    return held[0] is not None and all(torch.equal(h.cpu(), w) for h, w in zip(held, wanted))


def mixed_view_batch(splits: data.Splits, index: torch.Tensor, view: torch.Tensor, views: torch.Tensor,
                     mixing, augmented: bool, device) -> tuple[torch.Tensor, torch.Tensor]:
    """Training images `index` in their views number `view` (from the (N, V, 3) table `views`),
    each blended with its partner in the same view number where `mixing` is given: the images
    and the labels (class probabilities with mixup, class indices without), on `device`. The
    student's batch and the teacher's, so that both see the very same pixels."""
    def at(table, images):  # a table's entries for these images in view number `view`, wherever it lives
        return table[images.to(table.device), view.to(table.device)]

    x = data.view_batch(splits, index, at(views, index), augmented, device)
    y = splits.y_train[index].to(device, non_blocking=True)
    if mixing is None:
        return x, y
    partner, weight = at(mixing[0], index).to(index.device), at(mixing[1], index)
    x_partner = data.view_batch(splits, partner, at(views, partner), augmented, device)
    return data.blend(x, x_partner, y, splits.y_train[partner].to(device), weight.to(device), splits.num_classes)


def target_views(n: int, cfg: Config) -> torch.Tensor:
    """The views the teacher's targets are computed on: the student's own (`make_views`), or with
    `teacher_views = "plain"` the un-augmented image alone (N, 1, 3), whatever view the student sees."""
    return data.identity_views(n).unsqueeze(1) if cfg.teacher_views == "plain" else make_views(n, cfg)


def distillation_targets(model: nn.Module, x: torch.Tensor, y: torch.Tensor, needs,
                         feature_stage: int | None = None) -> dict:
    """A model's logits, attention maps ("act", "grad") and, for "feat", the flattened output
    of stage `feature_stage`, for one normalized batch.

    Used for the teacher's targets, and for any model's maps in the notebooks' pictures."""
    out = {}
    if "grad" in needs:
        with torch.enable_grad():
            x = x.detach().requires_grad_(True)  # makes the stage outputs part of a graph
            logits, stages = forward_features(model, x)
            out["grad"] = [m.detach() for m in gradient_attention(logits, y, stages)]
        logits, stages = logits.detach(), [f.detach() for f in stages]
    else:
        with torch.no_grad():
            logits, stages = forward_features(model, x)
    if "logits" in needs:
        out["logits"] = logits.float()
    if "act" in needs:
        out["act"] = [activation_attention(f) for f in stages]
    if "feat" in needs:
        if feature_stage is None:
            raise ValueError('distillation_targets needs feature_stage for "feat": which stage\'s features.')
        out["feat"] = stages[feature_stage].flatten(1)
    return out


ALL_TARGETS = ("logits", "act", "grad")  # what one gradient pass gives; "feat" is asked for apart (it is large)


def teacher_targets(teacher: nn.Module, splits: data.Splits, cfg: Config,
                    cache: bool = True, needs=ALL_TARGETS) -> Targets:
    """The teacher's logits, activation maps and gradient maps for every training image and
    view, computed once. By default all three, which the series' methods share (the gradient
    pass yields the other two almost free); `needs` asks for fewer (logits alone need no
    backward pass), or for "feat", the feature map the feature methods match (float16:
    2,048 values per view for the tutorial's DeepNN, 164 MB for 5,000 images x 8 views).
    With mixup on fixed views, the outputs are the teacher's on each view's blend (`make_mixing`).

    Cached on disk (in kdlib's cache folder) under a key of the teacher's weights, the
    training images, the views (and mixup), the device type, the precision and the code that
    computes them (`identity.TARGETS_CODE`: not the students' engine or recipes), so every
    student run of a series shares them. With a view per epoch (`view_order = "epoch"`), a
    cached table of a shorter schedule serves as the first views of a longer one: only the
    rest is computed, and an image drawn again in the same crop and flip (35 of 120 fresh views
    of each image, of 162 possible) is computed once (`_inputs`). A damaged
    cache file is computed again, with a warning.
    """
    device = resolve_device(cfg.device)
    views = target_views(len(splits.y_train), cfg)
    mixing = make_mixing(len(splits.y_train), cfg)
    teacher_id = weights_digest(teacher)
    needs = tuple(name for name in (*ALL_TARGETS, "feat") if name in needs)
    if {"act", "grad"} & set(needs):  # the gradient pass yields the rest almost free: keep all for later methods
        needs = tuple(dict.fromkeys((*ALL_TARGETS, *needs)))
    feature_stage = hint_stage(cfg.family)

    def cached(kinds, first=None):  # the cache file of the first `first` views (all by default)
        mixed = None if mixing is None else [digest(m[:, :first]) for m in mixing]
        key = identity.key(digest(views[:, :first]), teacher_id, splits.fingerprint, device.type,
                           precision(device, cfg.amp), identity.TARGETS_CODE, kinds,
                           feature_stage if "feat" in kinds else None, *([mixed] if mixed else []))
        return data.cache_dir() / "targets" / f"{key}.pt"

    path = cached(needs)
    supersets = [kinds for kinds in (ALL_TARGETS, (*ALL_TARGETS, "feat")) if set(needs) <= set(kinds)]
    for candidate in dict.fromkeys([path, *map(cached, supersets)]):  # a cached superset serves too
        if cache and (held := _read(candidate)) is not None:
            return held
    targets = Targets(views=views, teacher=teacher_id, data=splits.fingerprint,
                      partners=None if mixing is None else mixing[0], weights=None if mixing is None else mixing[1])
    first, done = 0, {}
    if cache and cfg.view_order == "epoch":  # the longest cached table of this one's first views
        for shorter in range(views.shape[1] - 1, 0, -1):
            if (held := _read(cached(needs, shorter))) is not None:
                first, done = shorter, {name: getattr(held, name) for name in needs}
                break
    teacher = teacher.to(device, memory_format=torch.channels_last).eval()
    rest = _computed(teacher, splits, cfg, views, mixing, done, first, needs, feature_stage, device)
    for name, value in rest.items():
        joined = (torch.cat([done[name], value], 1) if name in ("logits", "feat") else
                  [torch.cat(pair, 1) for pair in zip(done[name], value)]) if done else value
        setattr(targets, name, joined)
    if cache:
        save_tensors(vars(targets), path)
    return targets


def _read(path) -> Targets | None:
    """Cached targets, or None where there are none (or they cannot be read: computed again)."""
    return read_cache(path, "teacher targets", lambda held: Targets(**held))


def _inputs(views: torch.Tensor, mixing, cfg: Config) -> torch.Tensor:
    """(N, V) numbers of the teacher's inputs, equal where two (image, view) cells are the same
    pixels and worth computing once: with a view per epoch (`view_order = "epoch"`), the same
    image drawn again in the same crop and flip (35 of 120 fresh views of an image, of 162
    possible). Elsewhere every cell is its own: with mixup a blend's weight comes from a
    continuum, and a few fixed views repeat too rarely (2 in 100 of 8) to be worth their
    table's targets changing in the last bits (a row's neighbours in its batch move them)."""
    n, v = views.shape[:2]
    if mixing is not None or cfg.view_order != "epoch":
        return torch.arange(n * v).view(n, v)
    code = torch.arange(n)[:, None].expand(n, v)
    for column, size in enumerate((data.CROP_OFFSETS, data.CROP_OFFSETS, 2)):  # dy, dx, flip
        code = code * size + views[..., column]
    return code


def _computed(teacher: nn.Module, splits: data.Splits, cfg: Config, views: torch.Tensor, mixing, done: dict,
              first: int, needs, feature_stage, device) -> dict:
    """The teacher's outputs for views `first`, `first + 1`, ... of every image, where `done`
    holds those of the views before: logits (N, v, K) float32, feat (N, v, D) and each stage's
    maps (N, v, H*W) float16. Each distinct input (`_inputs`) that `done` does not already hold
    is run once, in chunks of 1,000."""
    n, v = len(splits.y_train), views.shape[1] - first
    inputs, cells = torch.unique(_inputs(views, mixing, cfg), return_inverse=True)  # cells: (N, V) in [0, inputs)
    held = torch.full((len(inputs),), -1)                  # input -> its row in `done` (flattened), or -1
    held[cells[:, :first].flatten()] = torch.arange(n * first)
    wanted = cells[:, first:].flatten()
    todo = torch.unique(wanted)
    todo = todo[held[todo] < 0]
    where = torch.empty_like(held)                          # input -> one (image, view) cell showing it
    where[wanted] = torch.arange(n * v)
    image_of, view_of = where[todo] // v, first + where[todo] % v
    chunks: dict[str, list] = {}
    for start in range(0, len(todo), 1000):
        rows = slice(start, start + 1000)
        x, y = mixed_view_batch(splits, image_of[rows].to(splits.device), view_of[rows].to(splits.device), views,
                                mixing, cfg.augment, device)
        with autocast(device, cfg.amp):
            out = distillation_targets(teacher, x, y, needs, feature_stage)
        for name, value in out.items():
            value = value.half() if name == "feat" else value  # float16 at once: the largest target
            chunks.setdefault(name, []).append(value if name in ("logits", "feat") else list(value))
    row = held.clone()                                      # input -> its row in [done's rows, the computed ones]
    row[todo] = n * first + torch.arange(len(todo))

    def table(computed: list, before, dtype) -> torch.Tensor:  # (N, v, ...) from done's rows and the new ones
        parts = ([before.flatten(0, 1).to(dtype)] if first else []) + [c.to("cpu", dtype) for c in computed]
        return torch.cat(parts)[row[wanted]].view(n, v, -1)

    out = {}
    if "logits" in needs:
        out["logits"] = table(chunks.get("logits", []), done.get("logits"), torch.float32)
    if "feat" in needs:  # float16: half the memory; ReLU features of O(1) lose nothing that matters
        out["feat"] = table(chunks.get("feat", []), done.get("feat"), torch.float16)
    for name in ("act", "grad"):  # maps as float16: half the memory, ample precision
        if name in needs:
            stages = len(done[name]) if first else len(chunks[name][0])
            out[name] = [table([c[k] for c in chunks.get(name, [])], done[name][k] if first else None, torch.float16)
                         for k in range(stages)]
    return out
