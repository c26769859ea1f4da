"""The ways to run the series, as notebook parameters: one table, derived from the defaults
of `kdlib.Config`, and which parameters each notebook declares.

The notebooks' parameter cells are written from here (`parameters_cell`, the `course`
profile's values: a learner who opens a notebook in Jupyter or Colab gets the course), and
`tests/test_notebooks.py` fails when a cell and this table disagree.
"""

from __future__ import annotations

from dataclasses import fields

from .config import Config

_CONFIG = {f.name: f.default for f in fields(Config)}
# Config's training settings that the notebooks expose, with Config's defaults.
_TRAINING = {name: _CONFIG[name] for name in ("batch_size", "lr", "schedule", "weight_decay", "augment",
                                              "views", "temperature", "kd_weight", "beta", "feature_weight", "device",
                                              "amp", "compile", "workers", "eval_every")}
BASE = {"profile": "interactive", "family": "tutorial", "data": "cifar10", "normalization": "data",
        "n_train": None, "n_val": None, "n_test": None, "teacher_weights": None,
        "teacher_epochs": 30, "teacher_snapshots": [], "student_epochs": 30, "seeds": [0, 1, 2], **_TRAINING,
        "progress": True, "reuse": False,
        # 07_sweeps: one knob at a time, the rest as above
        "sweep_epochs": None, "sweep_seeds": [0], "temperatures": [1.0, 2.0, 4.0, 8.0],
        "kd_weights": [0.25, 0.5, 0.75, 0.9], "betas": [0.0, 50.0, 250.0, 1000.0], "beta_method": "act_at",
        # 08_consistent_teaching: KD and CE again at a longer schedule (patience)
        "patient_epochs": 60}

# The published teacher (from notebooks/, where they run): a DeepNN trained on the 45,000 training
# images outside the 5,000-image validation split (85.19% in float16 on the 10,000 test images;
# weights/teacher-tutorial.md), so that nothing that teaches has seen the images that choose.
PUBLISHED_TEACHER = "../weights/teacher-tutorial.pt"

PROFILES = {
    # The CPU course: the published teacher (85% on all 10,000 test images), students on a fixed
    # 5,000 of the training images with 5,000 others held out for validation, 60 epochs, 4 seeds,
    # the controls, and sweeps with 2 seeds per point. Seeds 3-6, declared before the run that
    # made notebooks/ (README): none of the earlier course runs' seeds 0-2, and on two cores a
    # fourth seed costs no wall time (seeds train two side by side). Chosen by a screen on validation
    # (scripts/recipe_screen.py, 2-core AMD EPYC, 2026-11-30; docs/history.md): KD minus
    # CE was +1.07 [-0.59, +2.74] with 30 epochs of 10,000 images and +3.60 [+3.17, +4.03] with
    # 60; 60 epochs of 5,000 gave +3.95 [+3.29, +4.61] at half the cost (the minutes of each
    # notebook: README, "The CPU course"). Validation every 5 epochs: a pass per epoch would
    # cost a third of the training.
    "course": {**BASE, "n_train": 5000, "n_val": 5000, "teacher_weights": PUBLISHED_TEACHER,
               "teacher_epochs": 20, "student_epochs": 60, "weight_decay": 5e-4, "eval_every": 5,
               "seeds": [3, 4, 5, 6], "sweep_seeds": [3, 4], "temperatures": [1.0, 4.0, 8.0], "kd_weights": [0.25, 0.5, 0.9],
               "betas": [0.0, 250.0, 1000.0], "patient_epochs": 120},
    # The full scale: every training image outside the course's 5,000-image validation split
    # (45,000), 30 epochs each, weight decay as the published teacher's recipe. About 4 minutes
    # a student run, two seeds side by side, on a 2-core AVX-512 bf16 CPU (README, "The
    # reference's table at its own scale"). Seeds 0-3: the first run had three, whose KD - CE
    # (+0.57 [-0.26, +1.41]) left the 95% interval at df = 2 (t = 4.30) too wide to say; a fourth
    # seed costs no wall time on two cores, as in the course, and narrows it by a third. Declared
    # before the final-code run; the 2026-12-01 run's seeds 0-2 pair with it.
    "full": {**BASE, "n_val": 5000, "teacher_weights": PUBLISHED_TEACHER, "weight_decay": 5e-4,
             "seeds": [0, 1, 2, 3]},
    "smoke": {**BASE, "data": "synthetic", "n_train": 512, "n_val": 128, "n_test": 256, "teacher_epochs": 1,
              "student_epochs": 1, "seeds": [0], "views": 2, "batch_size": 64, "sweep_seeds": [0],
              "temperatures": [1.0, 4.0], "kd_weights": [0.5], "betas": [0.0, 250.0], "patient_epochs": 2},
    "tutorial": {**BASE, "teacher_epochs": 10, "student_epochs": 10, "lr": 1e-3, "schedule": "constant",
                 "augment": False, "views": 0, "temperature": 2.0, "kd_weight": 0.25},
    # the reference notebook's models and protocol (its attention rows used its own
    # formulation, see 04; here attention is this series')
    "reference": {**BASE, "family": "reference", "normalization": "imagenet", "teacher_epochs": 10,
                  "student_epochs": 10, "seeds": [42, 43, 44], "lr": 1e-3, "schedule": "constant",
                  "augment": False, "views": 0, "temperature": 3.0, "kd_weight": 0.25, "sweep_seeds": [42]},
}
DEFAULT = "course"  # what the notebooks' parameter cells hold
# What "smoke scale" means, whatever the profile: synthetic data, one short epoch, one seed.
# (views, seeds and sweep seeds keep the profile's shape: `at_smoke_scale` sets them itself.)
SMOKE_SCALE = ("data", "n_train", "n_test", "teacher_epochs", "student_epochs", "batch_size",
               "temperatures", "kd_weights", "betas", "patient_epochs")


def at_smoke_scale(profile: str) -> dict:
    """`profile` at smoke scale, keeping its shape: its family, whether it holds out a
    validation split (smoke's small one where it does, none where it has none), its first seed,
    its recipe. What the tests and `kdlib.gpujob --smoke` run every profile with."""
    smoke, own = PROFILES["smoke"], PROFILES[profile]
    return {**own, **{k: smoke[k] for k in SMOKE_SCALE}, "n_val": smoke["n_val"] if own["n_val"] else None,
            "views": own["views"] and smoke["views"],  # fresh views (0) stay fresh
            "seeds": own["seeds"][:1], "sweep_seeds": own["sweep_seeds"][:1], "teacher_weights": None}


def sweep_runs(params: dict) -> int:
    """How many runs 07 trains: every (knob value, sweep seed) except the points that are main
    runs (the knob at its main value, a seed of the main runs, the main schedule)."""
    knobs = {"temperature": "temperatures", "kd_weight": "kd_weights", "beta": "betas"}
    reused = params["sweep_epochs"] in (None, params["student_epochs"])
    return sum(1 for knob, values in knobs.items() for value in params[values] for seed in params["sweep_seeds"]
               if not (reused and value == params[knob] and seed in params["seeds"]))

# Where a notebook run by hand writes (a series run sets its own run folder).
FOLDERS = {"results_dir": "../runs/interactive/results", "checkpoint_dir": "../runs/interactive/checkpoints",
           "figures_dir": "../runs/interactive/figures"}

_DATA = ["profile", "family", "data", "normalization", "n_train", "n_val", "n_test", "teacher_weights"]
_RECIPE = ["batch_size", "lr", "schedule", "weight_decay", "augment"]
_ENGINE = ["device", "amp", "compile", "workers", "eval_every", "progress", "reuse"]
_STUDENTS = ["student_epochs", "seeds", *_RECIPE, "views"]
NOTEBOOK_PARAMETERS = {
    "01_teacher.ipynb": [*_DATA, "teacher_epochs", "teacher_snapshots", *_RECIPE, *_ENGINE],
    "02_student_baseline.ipynb": [*_DATA, *_STUDENTS, *_ENGINE],
    "03_kd_logits.ipynb": [*_DATA, *_STUDENTS, "temperature", "kd_weight", *_ENGINE],
    # 04 and 05 compare against KD's runs (03's): they declare its knobs, or they would train another KD
    "04_grad_attention.ipynb": [*_DATA, *_STUDENTS, "temperature", "kd_weight", "beta", *_ENGINE],
    "05_squared_attention.ipynb": [*_DATA, *_STUDENTS, "temperature", "kd_weight", "beta", "feature_weight", *_ENGINE],
    "06_combined.ipynb": [*_DATA, *_STUDENTS, "temperature", "kd_weight", "beta", "feature_weight", *_ENGINE],
    "07_sweeps.ipynb": [*_DATA, *_STUDENTS, "temperature", "kd_weight", "beta", "sweep_epochs", "sweep_seeds",
                        "temperatures", "kd_weights", "betas", "beta_method", *_ENGINE],
    "08_consistent_teaching.ipynb": [*_DATA, *_STUDENTS, "temperature", "kd_weight", "patient_epochs", *_ENGINE],
    "09_which_teacher.ipynb": [*_DATA, *_STUDENTS, "temperature", "kd_weight", *_ENGINE],
}

NOTES = {
    "profile": "label stored with the outputs",
    "family": 'the teacher/student pair: "tutorial" (PyTorch tutorial) or "reference"',
    "data": '"cifar10" (download), "synthetic", or an ImageFolder root / .tar.gz',
    "normalization": 'per-channel mean/std of the training images, or "imagenet"',
    "n_train": "a fixed random sample of n training images (None: all)",
    "n_val": "validation images held out of the training split (None: none)",
    "n_test": "a fixed random sample of n test images (None: all 10,000)",
    "teacher_weights": "a published teacher (None: 01 trains one)",
    "teacher_epochs": "when 01 trains the teacher",
    "teacher_snapshots": "epochs after which 01 also keeps the teacher's weights (teacher-epochNNN.pt)",
    "student_epochs": "",
    "seeds": "one student per seed; the same seeds for every method",
    "batch_size": "",
    "lr": "peak learning rate of the one-cycle schedule (Adam)",
    "schedule": 'or "constant" (the tutorial\'s)',
    "weight_decay": "Adam's L2 weight decay",
    "augment": "random crop (pad 4) + horizontal flip",
    "views": "fixed augmented views per image (0: fresh views, live teacher)",
    "temperature": "KD temperature T",
    "kd_weight": "weight a of the KD term; cross-entropy gets 1 - a",
    "beta": "weight of the attention term",
    "feature_weight": "weight w of the feature methods' term (cosine, regressor); CE gets 1 - w",
    "sweep_epochs": "None: student_epochs",
    "sweep_seeds": "",
    "temperatures": "",
    "kd_weights": "",
    "betas": "",
    "beta_method": "the attention method whose beta is swept",
    "patient_epochs": "KD and CE again at this longer schedule (patience)",
    "device": '"auto", "cpu" or "cuda"',
    "amp": '"auto" (bf16 where the hardware has it), "bf16" or "off"',
    "compile": "torch.compile the model (pays on a GPU)",
    "workers": 'CPU: seeds side by side, one process of one thread each ("auto": one per core)',
    "eval_every": "a validation point every k epochs (and after the last)",
    "progress": "progress bars",
    "reuse": "continue or take finished runs with the same settings",
    "results_dir": "",
    "checkpoint_dir": "",
    "figures_dir": "a run by hand never writes over the published figures/",
}


def parameters_cell(notebook: str, profile: str = DEFAULT) -> str:
    """The source of `notebook`'s parameters cell: the names it declares with `profile`'s
    values, then the folders a run by hand writes to."""
    values = {**PROFILES[profile], **FOLDERS}
    lines = [f"{name} = {_literal(values[name])}" for name in [*NOTEBOOK_PARAMETERS[notebook], *FOLDERS]]
    width = max(map(len, lines)) + 2
    return "\n".join(f"{line:<{width}}# {NOTES[name]}" if NOTES[name] else line
                     for line, name in zip(lines, [*NOTEBOOK_PARAMETERS[notebook], *FOLDERS]))


def _literal(value) -> str:
    """Python source for a parameter's value, strings in double quotes as the notebooks write them."""
    return '"' + value + '"' if isinstance(value, str) else repr(value)


# ----------------------------------------------------------------------------- notebook text

# Where the series lives: the Colab badges and the set-up cells' clone are written from this
# one line (`python scripts/sync_notebooks.py`); a fork changes it there.
REPOSITORY = "https://github.com/kdlib-series/kd-cifar10"
CLONE = "/content/kd-cifar10"  # where Colab's set-up cell puts the clone


def badge(notebook: str) -> str:
    """The "Open in Colab" badge of a notebook, pointing at REPOSITORY's main branch."""
    path = REPOSITORY.removeprefix("https://github.com/")
    return (f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]"
            f"(https://colab.research.google.com/github/{path}/blob/main/notebooks/{notebook})")


def setup_cell() -> str:
    """Every notebook's first code cell: in Colab, where each notebook gets a machine of its
    own, fetch the series and make kdlib importable in the running kernel; elsewhere nothing.

    Why sys.path and not `pip install -e`: an editable install is found through a .pth file
    that Python reads only at start-up, so the running kernel would not see it. Colab has
    every package kdlib needs (torch, torchvision, matplotlib, seaborn, pandas, scipy, tqdm)."""
    return f'''# Set-up. In Colab (Runtime > Change runtime type > T4 GPU: its CPU runtime has two cores), fetch the
# series and make kdlib importable in this kernel. Elsewhere this does nothing: install kdlib
# with `pip install -e .` in a checkout (README).
import sys
if "google.colab" in sys.modules:
    import os, subprocess
    REPOSITORY, CLONE = {_literal(REPOSITORY)}, {_literal(CLONE)}
    if not os.path.isdir(CLONE):
        cloned = subprocess.run(["git", "clone", "--depth", "1", REPOSITORY, CLONE], capture_output=True, text=True)
        if cloned.returncode != 0:
            raise RuntimeError(f"Could not clone {{REPOSITORY}}: {{cloned.stderr.strip()}}\\n"
                               "If this notebook comes from a fork, set REPOSITORY to the fork's address.")
    sys.path.insert(0, CLONE)  # importable now, in this kernel
    os.chdir(f"{{CLONE}}/notebooks")'''
