"""What a trained model does on held-out images: its predictions, its attention maps, and
the test-set metrics every record holds.

    predict(model, images, splits)                  -> logits
    attention_maps(model, splits, images, labels)   -> per-stage maps, for pictures
    fidelity(model, teacher, splits)                -> how closely it matches the teacher, on training and test images
    teacher_outputs(teacher, splits)                -> what evaluate needs of a teacher, computed once into the cache
    evaluate(model, splits, teacher)                -> accuracy, per class, confusion, ECE, fidelity, map similarity
"""

from __future__ import annotations

import torch
from torch import nn

from . import data, identity, methods
from .config import Config, autocast, precision, resolve_device
from .files import read_cache, save_tensors, weights_digest
from .losses import expected_calibration_error
from .targets import distillation_targets


@torch.no_grad()
def predict(model: nn.Module, images: torch.Tensor, splits: data.Splits, cfg: Config | None = None,
            batch_size: int = 1000) -> torch.Tensor:
    """Logits (float32, on the CPU) for uint8 images, in eval mode."""
    cfg = cfg or Config()
    device = resolve_device(cfg.device)
    model = model.to(device, memory_format=torch.channels_last)
    was_training = model.training
    model.eval()
    out = []
    for chunk in images.split(batch_size):
        x = data.normalize(chunk.to(device), splits.mean, splits.std)
        with autocast(device, cfg.amp):
            out.append(model(x).float())
    model.train(was_training)
    return torch.cat(out).cpu()  # one copy to the host, not one (and a sync) per chunk


def attention_maps(model: nn.Module, splits: data.Splits, images: torch.Tensor,
                   labels: torch.Tensor, kind: str = "act", cfg: Config | None = None,
                   batch_size: int = 500) -> list[torch.Tensor]:
    """Per-stage attention maps (N, H*W) of `model` for uint8 images, in eval mode: "act" for
    squared activations, "grad" for the gradient of the CE loss at the true labels."""
    if kind not in ("act", "grad"):
        raise ValueError(f"kind must be 'act' or 'grad', not {kind!r}.")
    return _maps(model, splits, images, labels, (kind,), cfg, batch_size)[kind]


def _maps(model, splits, images, labels, kinds, cfg=None, batch_size: int = 500) -> dict[str, list[torch.Tensor]]:
    """`attention_maps` of several kinds from one pass over the images."""
    device = resolve_device((cfg or Config()).device)
    model = model.to(device, memory_format=torch.channels_last)
    was_training = model.training
    model.eval()
    chunks = []
    for x, y in zip(images.split(batch_size), labels.split(batch_size)):
        x = data.normalize(x.to(device), splits.mean, splits.std)
        chunks.append(distillation_targets(model, x, y.to(device), kinds))
    model.train(was_training)
    return {kind: [torch.cat(stage).cpu() for stage in zip(*(c[kind] for c in chunks))] for kind in kinds}


MAP_SIMILARITY_IMAGES = 2000  # a fixed random sample of the test set: a mean cosine needs no more
# What is computed once per teacher and shared by every student of a series: its test and
# training predictions and its maps of the sample (38 s of one CPU thread for the course's
# DeepNN, measured on a 2-core Intel Xeon: each side-by-side worker used to pay it). Kept on
# disk (`teacher_outputs`) and in memory for the last two teachers of each kind (a series
# alternates between its teacher and a control's).
_TEACHERS_KEPT = 2
_per_teacher: dict = {}


def _for_teacher(what: str, teacher: nn.Module, splits: data.Splits, cfg: Config | None, compute):
    cfg = cfg or Config(progress=False)
    device = resolve_device(cfg.device)
    key = identity.key(what, weights_digest(teacher), splits.fingerprint, device.type, precision(device, cfg.amp),
                       identity.EVALUATION_CODE)
    if (what, key) not in _per_teacher:
        same_kind = [held for held in _per_teacher if held[0] == what]
        if len(same_kind) >= _TEACHERS_KEPT:
            del _per_teacher[same_kind[0]]
        _per_teacher[what, key] = _on_disk(data.cache_dir() / "teacher-outputs" / f"{key}.pt", compute)
    return _per_teacher[what, key]


def _on_disk(path, compute):
    """`compute()`'s tensors, read from `path` where an earlier process wrote them, else computed and written there."""
    held = read_cache(path, "teacher outputs")
    if held is None:
        held = compute()
        save_tensors(held, path)
    return held


def teacher_outputs(teacher: nn.Module, splits: data.Splits, cfg: Config | None = None) -> None:
    """Compute (or read) what `evaluate` needs of `teacher` and put it in the cache, so that
    the processes that train students side by side read it instead of each computing it."""
    for split in ("train", "test"):
        _teacher_log_probs(teacher, split, splits, cfg)
    _teacher_maps(teacher, splits, cfg)


def _map_sample(splits: data.Splits) -> tuple[torch.Tensor, torch.Tensor]:
    n = len(splits.y_test)
    if n <= MAP_SIMILARITY_IMAGES:
        return splits.x_test, splits.y_test
    index = torch.randperm(n, generator=torch.Generator().manual_seed(0))[:MAP_SIMILARITY_IMAGES].sort().values
    return splits.x_test[index.to(splits.x_test.device)], splits.y_test[index.to(splits.y_test.device)]


def _teacher_log_probs(teacher: nn.Module, split: str, splits: data.Splits, cfg: Config) -> torch.Tensor:
    images = splits.x_test if split == "test" else splits.x_train
    return _for_teacher(f"log_probs {split}", teacher, splits, cfg,
                        lambda: predict(teacher, images, splits, cfg).log_softmax(1))


def _teacher_maps(teacher: nn.Module, splits: data.Splits, cfg: Config | None) -> dict[str, list[torch.Tensor]]:
    images, labels = _map_sample(splits)
    return _for_teacher("maps", teacher, splits, cfg, lambda: _maps(teacher, splits, images, labels, ("act", "grad"), cfg))


def fidelity(model: nn.Module, teacher: nn.Module, splits: data.Splits, cfg: Config | None = None,
             test_logits: torch.Tensor | None = None) -> dict[str, dict[str, float]]:
    """How closely the model matches its teacher (Stanton et al. 2021), on the training images
    (plain, un-augmented: the same for every way of teaching) and on the test images: top-1
    agreement (the share of images where both predict the same class) and the mean
    KL(teacher || model) of their softmax outputs at temperature 1 (0: the same outputs)."""
    out = {}
    for split in ("train", "test"):
        logits = test_logits if split == "test" and test_logits is not None else predict(
            model, splits.x_test if split == "test" else splits.x_train, splits, cfg)
        own, theirs = logits.log_softmax(1), _teacher_log_probs(teacher, split, splits, cfg)
        out[split] = {"agreement": float((own.argmax(1) == theirs.argmax(1)).float().mean()),
                      "kl": float((theirs.exp() * (theirs - own)).sum(1).mean())}
    return out


def map_similarity(model: nn.Module, teacher: nn.Module, splits: data.Splits,
                   cfg: Config | None = None) -> dict[str, list[float]]:
    """How close the model's attention maps are to the teacher's on the test set: for each
    kind ("act", "grad") and student stage, the mean over MAP_SIMILARITY_IMAGES test images (a
    fixed random sample) of the cosine similarity
    of the two maps (both are unit vectors: their dot product; 1 is the same map). Whether an
    attention method transferred anything shows here, against the CE student's similarity."""
    kinds = ("act", "grad")
    images, labels = _map_sample(splits)
    theirs = _teacher_maps(teacher, splits, cfg)
    own = _maps(model, splits, images, labels, kinds, cfg)
    return {kind: [float((m * t).sum(1).mean()) for m, t in methods.matched(own[kind], their_maps)]
            for kind, their_maps in theirs.items()}


def evaluate(model: nn.Module, splits: data.Splits, teacher: nn.Module | None = None,
             cfg: Config | None = None, detailed: bool = True) -> dict:
    """Test-set metrics: accuracy; with `detailed`, also per-class accuracy, the confusion
    matrix, expected calibration error and, given a teacher, agreement with its predictions
    and the similarity of the two models' attention maps (`map_similarity`), and its
    `fidelity` to the teacher on the training and test images."""
    logits = predict(model, splits.x_test, splits, cfg)
    labels = splits.y_test.cpu()
    prediction = logits.argmax(1)
    metrics = {"accuracy": float((prediction == labels).float().mean())}
    if not detailed:
        return metrics
    k = splits.num_classes
    confusion = torch.bincount(labels * k + prediction, minlength=k * k).view(k, k)
    metrics["per_class_accuracy"] = (confusion.diag() / confusion.sum(1).clamp(min=1)).tolist()
    metrics["confusion"] = confusion.tolist()
    metrics["ece"] = expected_calibration_error(logits.softmax(1), labels)
    if teacher is not None:
        metrics["fidelity"] = fidelity(model, teacher, splits, cfg, test_logits=logits)
        metrics["teacher_agreement"] = metrics["fidelity"]["test"]["agreement"]
        metrics["map_similarity"] = map_similarity(model, teacher, splits, cfg)
    return metrics
