"""What a run is, said once: the identity stored with every record and checkpoint, and every
match and key derived from it.

    of_run(cfg, splits, teacher, recipe, group) -> dict  stored in records and checkpoints
    matches(saved, wanted)                   -> bool   reuse: a finished run is taken only if equal
    COMPARED                                 (names)   what a table may not mix (results.comparable)
    key(*parts)                              -> str    epoch states and caches are named by it

A run's result depends on its settings (`Config`, without the display-only fields and with
the device and precision it resolved to), the engine's code (ENGINE_CODE) and its own recipe's
(`recipe_code`: the definitions in methods.py that its loss uses, so that a new method beside
it changes nothing of it), the data's content, its teacher's weights, the recipe it was trained
with and the seeds it was trained together with (stacked seeds share one stream of dropout
masks, `kdlib.members`). The teacher's cached targets depend on less: TARGETS_CODE; its
cached outputs for the metrics, EVALUATION_CODE.
"""

from __future__ import annotations

from dataclasses import asdict
from functools import lru_cache
from pathlib import Path

from .config import Config, precision, resolve_device
from .files import definitions_digest, digest_text, source_digest, weights_digest

_HERE = Path(__file__).parent
# The engine: any change to its code (not its comments) makes earlier runs and epoch states other runs.
ENGINE_CODE = source_digest(*(_HERE / f"{m}.py" for m in (
    "config", "data", "evaluation", "losses", "members", "models", "targets", "train")))
# What computes the teacher's targets (their cache key; the student's engine and recipes are not in it).
TARGETS_CODE = source_digest(*(_HERE / f"{m}.py" for m in ("config", "data", "losses", "models", "targets")))
# What computes a teacher's outputs for the metrics (its test and training predictions, its maps): their cache key.
EVALUATION_CODE = source_digest(*(_HERE / f"{m}.py" for m in ("config", "data", "evaluation", "losses", "models",
                                                              "targets")))


@lru_cache(maxsize=None)
def recipe_code(recipe: str, source: str | None = None) -> str:
    """The code of one method: the definitions of methods.py (or `source`) that its loss, its
    head and the loss path (`member_losses`) use, and its declaration's fields that decide
    training (needs, features, teacher, and its settings where it declares any)."""
    from .methods import get
    method = get(recipe)
    roots = ["member_losses", method.loss.__name__, *([method.head.__name__] if method.head else [])]
    code = definitions_digest(source or (_HERE / "methods.py").read_text(), roots)
    declared = [sorted(method.settings.items())] if method.settings else []  # none: the code of earlier runs
    return digest_text(code, list(method.needs), method.reads_stages, method.teacher, *declared)[:12]


# Replaced by device_type and precision, or not part of a result: like the thread count (which
# moves a CPU run's last bits, a draw as fair as another), how many runs train side by side.
DISPLAY_ONLY = ("progress", "device", "amp", "workers")
# What tables compare besides the teacher and the shared settings. Not the group: seeds trained
# together differ from seeds trained apart in their dropout masks only, a draw as fair as another.
COMPARED = ("source", "data", "n_train", "n_test", "device_type", "precision", "code")


def settings(cfg: Config, recipe: str | None = None) -> dict:
    """The Config fields that decide a result; for a `recipe`, without the knobs that only other
    recipes read (CE does not read the KD temperature: a CE run is the same run whatever it is)."""
    out = {k: v for k, v in asdict(cfg).items() if k not in DISPLAY_ONLY}
    if recipe is not None:
        from .methods import KNOBS, get
        unread = set(KNOBS) - set(get(recipe).knobs)
        out = {k: v for k, v in out.items() if k not in unread}
    return out


def of_run(cfg: Config, splits=None, teacher=None, recipe: str | None = None, group=None) -> dict:
    """A run's identity: its settings, device type, precision and code; with `splits`, the
    data's content and sizes; the teacher's weights (None: no teacher); the recipe; and
    `group`, the seeds it was trained with as one stacked network (itself alone by default)."""
    device = resolve_device(cfg.device)
    out = {"settings": settings(cfg, recipe), "device_type": device.type, "precision": precision(device, cfg.amp),
           "code": ENGINE_CODE, "teacher": None if teacher is None else weights_digest(teacher)}
    if splits is not None:
        out.update(source=splits.source, data=splits.fingerprint, n_train=len(splits.y_train),
                   n_val=0 if splits.y_val is None else len(splits.y_val), n_test=len(splits.y_test))
    if recipe is not None:
        out["recipe"] = recipe
        out["recipe_code"] = recipe_code(recipe)
    out["group"] = sorted(group) if group is not None else [cfg.seed]
    return out


def matches(saved: dict, wanted: dict) -> bool:
    """Whether a record or checkpoint's stored identity is exactly `wanted`."""
    return all(saved.get(k) == v for k, v in wanted.items())


def key(*parts) -> str:
    """A short name for what `parts` (identities, digests, plain values) describe."""
    return digest_text(*parts)
