"""Checkpoints: a model's weights with its architecture, class count and record fields,
written atomically and read back so that a planted file cannot run code."""

from __future__ import annotations

import os
from pathlib import Path

from torch import nn

from .files import load_tensors, save_tensors
from .models import ARCHITECTURES, build

class CheckpointError(RuntimeError):
    """A checkpoint that is missing or does not fit; the message says which and what to do."""


def save_checkpoint(model: nn.Module, path: str | os.PathLike, **meta) -> Path:
    """Write model weights with their architecture and class count, atomically. `meta` must
    hold plain values (str, numbers, bool, None, lists, dicts): loading runs no code."""
    model = getattr(model, "_orig_mod", model)  # the module under torch.compile
    payload = {"architecture": type(model).__name__, "num_classes": model.num_classes,
               "state_dict": {k: v.cpu() for k, v in model.state_dict().items()}, "meta": meta}
    return save_tensors(payload, Path(path))


def load_checkpoint(path: str | os.PathLike, architecture: str | None = None,
                    num_classes: int | None = None, hint: str = "") -> nn.Module:
    """A model rebuilt from `save_checkpoint`'s file, checked against what the caller expects.
    Read with torch's weights-only unpickler: a planted file cannot run code."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"No checkpoint at {path}. {hint or 'Train and save the model first.'}")
    try:
        payload = load_tensors(path)
    except Exception as error:
        raise CheckpointError(f"{path} is not a file torch's safe loader reads ({type(error).__name__}: "
                              f"{error}): damaged, another kind of file, or one holding code. Replace it, or "
                              f"train the model again. {hint}") from None
    if not isinstance(payload, dict) or not {"architecture", "num_classes"} <= payload.keys():
        raise CheckpointError(f"{path} is a torch file but not a kdlib checkpoint (no architecture and class "
                              "count: a plain torch.save of weights?). Save a model with "
                              f"kdlib.save_checkpoint(model, path), or train it again. {hint}")
    found, classes = payload["architecture"], payload["num_classes"]
    if found not in ARCHITECTURES or not isinstance(classes, int) or isinstance(classes, bool) or classes < 1:
        raise CheckpointError(f"{path} has a damaged header: architecture {found!r} (kdlib builds "
                              f"{sorted(ARCHITECTURES)}), {classes!r} classes (expected an integer "
                              f">= 1). Replace it, or train the model again. {hint}")
    if architecture is not None and found != architecture:
        raise CheckpointError(f"{path} holds a {found}, not the {architecture} expected here. "
                              f"Point to a {architecture} checkpoint. {hint}")
    if num_classes is not None and classes != num_classes:
        raise CheckpointError(f"{path} holds a {found} for {classes} classes, but the data has "
                              f"{num_classes}. Retrain it on this data source. {hint}")
    model = build(found, classes)
    try:
        model.load_state_dict(payload["state_dict"])
    except Exception as error:
        raise CheckpointError(f"{path}: its weights do not fit a {found} for {classes} classes "
                              f"({type(error).__name__}: {str(error)[:300]}). Replace it, or train "
                              f"the model again. {hint}") from None
    meta = payload.get("meta", {})
    model.checkpoint_meta = meta if isinstance(meta, dict) else {}
    return model
