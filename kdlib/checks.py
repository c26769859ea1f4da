"""Every setting's type and range in one table, checked before any work starts.

`Config`, `kdlib.load`, the notebooks (through `experiment.config`) and the series' preflight
all check their values here, so that `-p seeds 3` or `n_train=-5` stops within seconds with
the parameter, the value and what is expected, instead of a TypeError after the teacher has
trained for minutes (or, worse, a run that ends green on the wrong data).
"""

from __future__ import annotations

import math
from numbers import Real
from typing import Callable


class ParameterError(ValueError):
    """A setting of the wrong type or out of range; the message names each and what it expects."""


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v) -> bool:
    return isinstance(v, Real) and not isinstance(v, bool) and math.isfinite(v)


def _int_at_least(low: int) -> tuple[Callable, str]:
    return (lambda v: _is_int(v) and v >= low), f"an integer >= {low}"


def _number(test: Callable, text: str) -> tuple[Callable, str]:
    return (lambda v: _is_number(v) and test(v)), text


def _optional(rule: tuple[Callable, str]) -> tuple[Callable, str]:
    return (lambda v: v is None or rule[0](v)), f"None or {rule[1]}"


def _list_of(rule: tuple[Callable, str], what: str, example: str) -> tuple[Callable, str]:
    return ((lambda v: isinstance(v, (list, tuple)) and len(v) > 0 and all(rule[0](x) for x in v)),
            f"a non-empty list of {what}, e.g. {example}")


def _one_of(*choices) -> tuple[Callable, str]:
    return (lambda v: v in choices), "one of " + ", ".join(map(repr, choices))


_BOOL = ((lambda v: isinstance(v, bool)), "True or False")
_TEXT = ((lambda v: isinstance(v, str) and v != ""), "a non-empty string")
_EPOCHS = _int_at_least(1)
_SEED = _int_at_least(0)
_TEMPERATURE = _number(lambda v: v > 0, "a number > 0")
_KD_WEIGHT = _number(lambda v: 0 <= v <= 1, "a number from 0 to 1")
_BETA = _number(lambda v: v >= 0, "a number >= 0")

RULES: dict[str, tuple[Callable, str]] = {
    # kdlib.Config
    "epochs": _EPOCHS,
    "batch_size": _int_at_least(1),
    "lr": _number(lambda v: v > 0, "a number > 0"),
    "schedule": _one_of("onecycle", "constant"),
    "weight_decay": _number(lambda v: v >= 0, "a number >= 0"),
    "augment": _BOOL,
    "views": _int_at_least(0),
    "teacher_views": _one_of("same", "plain"),
    "view_order": _one_of("random", "epoch"),
    "mixup": _BOOL,
    "view_seed": _SEED,
    "temperature": _TEMPERATURE,
    "kd_weight": _KD_WEIGHT,
    "beta": _BETA,
    "feature_weight": _number(lambda v: 0 <= v <= 1, "a number from 0 to 1"),
    "smoothing": _number(lambda v: 0 <= v < 1, "a number from 0 up to (not including) 1"),
    "seed": _SEED,
    "device": _TEXT,
    "amp": _one_of("auto", "bf16", "off"),
    "compile": _BOOL,
    "workers": ((lambda v: v == "auto" or (isinstance(v, int) and not isinstance(v, bool) and v >= 1)),
                '"auto" or an integer >= 1'),
    "progress": _BOOL,
    "eval_every": _int_at_least(1),
    "family": _one_of("tutorial", "reference"),
    # kdlib.load
    "normalization": _one_of("data", "imagenet"),
    "n_train": _optional(_int_at_least(1)),
    "n_test": _optional(_int_at_least(1)),
    "n_val": _optional(_int_at_least(0)),
    # the notebooks' parameters
    "data": _TEXT,
    "profile": _TEXT,
    "teacher_epochs": _EPOCHS,
    "teacher_weights": _optional(_TEXT),
    "teacher_snapshots": ((lambda v: isinstance(v, (list, tuple)) and all(_is_int(x) and x >= 1 for x in v)),
                          "a list of epochs >= 1, e.g. [5, 15] ([] for none)"),
    "student_epochs": _EPOCHS,
    "sweep_epochs": _optional(_EPOCHS),
    "patient_epochs": _EPOCHS,
    "seeds": _list_of(_SEED, "integers >= 0", "[0, 1, 2]"),
    "sweep_seeds": _list_of(_SEED, "integers >= 0", "[0]"),
    "temperatures": _list_of(_TEMPERATURE, "numbers > 0", "[1.0, 4.0]"),
    "kd_weights": _list_of(_KD_WEIGHT, "numbers from 0 to 1", "[0.25, 0.5]"),
    "betas": _list_of(_BETA, "numbers >= 0", "[0.0, 250.0]"),
    "beta_method": ((lambda v: v in _beta_methods()), type("BetaMethods", (), {"__str__": lambda self: (
        "a method with an attention term weighted by beta (kdlib.methods: "
        + ", ".join(map(repr, _beta_methods())) + ")")})()),
    "reuse": _BOOL,
    "results_dir": _TEXT,
    "checkpoint_dir": _TEXT,
    "figures_dir": _TEXT,
}


def _beta_methods() -> list[str]:
    from .methods import METHODS  # on first use only: checks load with no model code
    return [m.name for m in METHODS.values() if "beta" in m.knobs]


def problems(values: dict) -> list[str]:
    """One line per value that breaks its rule: name, value (and its type) and what is expected.
    Names without a rule are not checked."""
    out = []
    for name, value in values.items():
        rule = RULES.get(name)
        if rule is not None and not rule[0](value):
            out.append(f"{name}={value!r} ({type(value).__name__}): expected {rule[1]}")
    for name in ("seeds", "sweep_seeds"):
        if _is_list_with_repeats(values.get(name)):
            out.append(f"{name}={values[name]!r}: a seed is listed twice; give each seed once")
    return out


def _is_list_with_repeats(v) -> bool:
    return isinstance(v, (list, tuple)) and len(set(map(repr, v))) < len(v)


def check(values: dict, where: str = "") -> None:
    """Raise ParameterError naming every value in `values` that breaks its rule."""
    found = problems(values)
    if found:
        lines = "\n  ".join(found)
        raise ParameterError(f"Invalid parameter{'s' if len(found) > 1 else ''}{f' ({where})' if where else ''}:\n  {lines}")


def command(prog: str, main: Callable, /, *args, **kwargs):
    """Run a command's `main` so that an input it refuses (a setting, a data source, a
    checkpoint, a folder without run records) ends it in one line naming the problem, with exit
    status 1, instead of a traceback. Only kdlib's own refusals: any other error is a bug, and
    keeps its traceback."""
    from .checkpoints import CheckpointError
    from .data import DataError
    from .results import RunFolderError
    try:
        return main(*args, **kwargs)
    except (ParameterError, DataError, CheckpointError, RunFolderError) as error:
        raise SystemExit(f"{prog}: {error}") from None


def check_device(device: str) -> None:
    """The device exists here: 'auto', 'cpu', or an accelerator torch can see."""
    import torch

    check({"device": device})
    if device == "auto":
        return
    try:
        kind = torch.device(device).type
    except RuntimeError as error:
        raise ParameterError(f"device={device!r}: not a device name ({error}). Use 'auto', 'cpu' "
                             "or 'cuda'.") from None
    if kind == "cuda" and not torch.cuda.is_available():
        raise ParameterError(f"device={device!r} was asked for but CUDA is not available here. "
                             "Use device='auto' (the GPU when there is one) or 'cpu'.")
    if kind not in ("cpu", "cuda"):
        raise ParameterError(f"device={device!r}: kdlib runs on 'cpu' or 'cuda'. Use 'auto', "
                             "'cpu' or 'cuda'.")
