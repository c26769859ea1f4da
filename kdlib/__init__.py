"""kdlib: knowledge distillation on CIFAR-10, from the PyTorch KD tutorial's models to a
fair, fast benchmark. Modules: models, data, losses, methods, config (what decides a run),
targets (the teacher's outputs, once), members (seeds stacked into one network), train (the
engine), checkpoints, results, plots, experiment, profiles (the series' parameters), checks
(every setting's rule), files (atomic writes, safe loads), published (the teacher in
weights/), series (python -m kdlib.series), bench (python -m kdlib.bench).

`import kdlib` loads torch and the engine only: the modules that need pandas, seaborn or
matplotlib (results, plots, experiment, published) load when first used, and nothing changes a
global setting.
"""

import importlib

from .checks import ParameterError
from .data import DataError, Splits, load
from .methods import METHODS
from .models import DeepNN, LightNN, build, count_parameters, forward_features
from . import checks, files, methods
from .train import (CheckpointError, Config, Run, evaluate, fit, fit_together, load_checkpoint,
                    save_checkpoint, teacher_targets)

__version__ = "0.1.0"
_LAZY = {"experiment", "plots", "results", "report", "published", "profiles", "series", "bench"}


def __getattr__(name):
    if name in _LAZY:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'kdlib' has no attribute {name!r}")
