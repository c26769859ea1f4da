"""kdlib: knowledge distillation on CIFAR-10, from the PyTorch KD tutorial's models to a
fair, fast benchmark. Modules: models, data, losses, methods (each way to train the student,
declared once), config (a run's settings), identity (what a run is, and every key from it),
targets (the teacher's outputs, once), members (seeds stacked into one network), train (the
engine), evaluation (a trained model's metrics), checkpoints, results (records and their
tables), report (what a run shows, in sentences), plots, experiment (what the notebooks call),
profiles (the series' parameters), checks (every setting's rule), files (atomic writes, safe
loads), stopping (signals, locks), published (the teacher in weights/), series (python -m
kdlib.series), bench (python -m kdlib.bench), cpubench (python -m kdlib.cpubench), gpujob
(python -m kdlib.gpujob).

`import kdlib` loads torch and the engine only: the modules that need pandas, seaborn or
matplotlib, and the commands' modules (`_LAZY` below), load when first used. It changes one global
setting: float32 subnormals count as zero on the CPU (`config.flush_denormals`: late in a run
they made each epoch twice as slow on an Intel CPU).
"""

import importlib

from .checks import ParameterError
from .data import DataError, Splits, load
from .methods import METHODS
from .models import DeepNN, LightNN, build, count_parameters, forward_features
from . import checks, files, identity, methods
from .checkpoints import CheckpointError, load_checkpoint, save_checkpoint
from .config import Config, flush_denormals
from .targets import teacher_targets
from .evaluation import evaluate
from .train import Run, fit, fit_together

flush_denormals()  # before torch starts its thread pool, which inherits it

__version__ = "0.1.0"
_LAZY = {"experiment", "plots", "results", "report", "published", "profiles", "series", "stopping", "bench",
         "cpubench", "gpujob"}


def __getattr__(name):
    if name in _LAZY:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'kdlib' has no attribute {name!r}")
