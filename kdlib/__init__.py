"""kdlib: knowledge distillation on CIFAR-10, from the PyTorch KD tutorial's models to a
fair, fast benchmark. Modules: models, data, losses, methods, config (what decides a run),
targets (the teacher's outputs, once), members (seeds stacked into one network), train (the
engine), checkpoints, results, plots, experiment, checks (every setting's rule), files
(atomic writes, safe loads), series (python -m kdlib.series), bench (python -m kdlib.bench)."""

from .checks import ParameterError
from .data import DataError, Splits, load
from .methods import METHODS
from .models import DeepNN, LightNN, build, count_parameters, forward_features
from . import checks, experiment, files, methods, plots, results
from .train import (CheckpointError, Config, Run, evaluate, fit, fit_together, load_checkpoint,
                    save_checkpoint, teacher_targets)

__version__ = "0.1.0"
