"""What decides a run, and where and how it runs: the `Config` of every training run and the
device and arithmetic it resolves to (`kdlib.identity` says what identifies a run)."""

from __future__ import annotations

import os
from contextlib import nullcontext
from functools import lru_cache
from dataclasses import asdict, dataclass

import torch

from . import checks


@dataclass
class Config:
    """Everything that decides a run; stored with its results."""

    epochs: int = 30
    batch_size: int = 128
    lr: float = 2e-3              # peak learning rate of the one-cycle schedule (Adam)
    schedule: str = "onecycle"    # "onecycle" or "constant"
    weight_decay: float = 0.0
    augment: bool = True          # random crop (pad 4, reflect) + horizontal flip
    views: int = 8                # fixed views per image (0: fresh views, live teacher)
    view_order: str = "random"    # a step shows one of an image's views at random, or "epoch": epoch e shows
                                  # view (e - 1) mod V of every image (V = epochs: fresh views, targets cached; 08)
    teacher_views: str = "same"   # the teacher's outputs on the very view the student sees ("same"), or
                                  # on the plain image, computed once ("plain": inconsistent teaching, 08)
    mixup: bool = False           # function matching (08): each image blended with another, weight ~ U(0, 1):
                                  # fixed views, a partner per view (targets cached); views = 0, live in the batch
    view_seed: int = 0            # the views are the same for every run that shares it
    temperature: float = 4.0      # KD temperature T
    kd_weight: float = 0.5        # a: weight of the KD term; CE gets 1 - a
    beta: float = 250.0           # weight of the attention term, summed over both stages
    feature_weight: float = 0.25  # w: weight of the feature methods' term; CE gets 1 - w (the tutorial's)
    smoothing: float = 0.1        # label smoothing of the "ls" control
    seed: int = 0
    device: str = "auto"          # "auto", "cpu", "cuda", ...
    amp: str = "auto"             # "auto" (bf16 where the hardware runs it fast: native_bf16), "bf16" or "off"
    compile: bool = False         # torch.compile the model (CUDA)
    workers: int | str = "auto"   # CPU: seeds trained side by side, one process and one thread each (`cpu_workers`)
    progress: bool = True         # tqdm progress bar
    eval_every: int = 1           # test accuracy every k epochs (and after the last)
    family: str = "tutorial"      # the teacher/student pair: "tutorial" or "reference" (kdlib.models)

    def __post_init__(self):
        checks.check(asdict(self), where="kdlib.Config")
        if self.mixup and self.teacher_views == "plain":
            raise checks.ParameterError('mixup=True trains on blends of two images, which teacher_views="plain" '
                                        'would not show the teacher: set teacher_views="same".')
        if self.view_order == "epoch" and not (self.augment and self.views > 0):
            raise checks.ParameterError('view_order="epoch" shows each image another of its fixed views every epoch: '
                                        "set augment=True and views > 0.")
        if self.teacher_views == "plain" and not (self.augment and self.views > 0):
            raise checks.ParameterError('teacher_views="plain" gives the teacher the plain image while the student '
                                        "sees fixed augmented views: set augment=True and views > 0.")

    @property
    def fixed_views(self) -> bool:
        """Whether each image has a fixed set of views, so the teacher's targets can be
        computed once; False: fresh views every step and the teacher runs live."""
        return self.views > 0 or not self.augment


def cpu_workers(workers: int | str = "auto") -> int:
    """How many seeds train side by side on the CPU, each in a process of one thread: "auto"
    is one per core (a thread per core fights nothing; two threads per run on two busy cores
    slowed runs up to ninefold)."""
    return max(1, os.cpu_count() or 1) if workers == "auto" else int(workers)


def resolve_device(device: str = "auto") -> torch.device:
    """The torch device that `device` ("auto", "cpu", "cuda", ...) means here; a clear
    ParameterError when it does not exist."""
    checks.check_device(device)
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def precision(device: torch.device, amp: str = "auto") -> str:
    """The arithmetic a run uses: "bf16" (autocast) or "float32". By default bf16 only where
    the hardware computes it natively (`native_bf16`); elsewhere it is emulated and slower
    than float32. "bf16" forces it, "off" never uses it."""
    return "bf16" if amp == "bf16" or (amp == "auto" and native_bf16(device)) else "float32"


def native_bf16(device: torch.device) -> bool:
    """Whether bf16 pays on `device`: a CUDA GPU of compute capability 8.0 or later (Ampere on;
    a T4 is 7.5), a CPU with AMX, or an AMD CPU with AVX512-BF16. Measured on a 2-core AMD EPYC
    with avx512_bf16 (2026-11-30): a LightNN epoch 21% faster (CE) and 31% (gradient attention),
    the teacher's targets 2.1x. On a 2-core Intel Xeon with avx512_bf16 and no AMX (2026-12-01,
    `python -m kdlib.cpubench --amp bf16` against `--amp off`): its bf16 matmul reached half the
    float32 one (161 against 313 GFLOP/s), a DeepNN epoch took 1.2-1.3x as long, the students
    within 10% either way: float32 there. On a T4, float16 would be its fast type but needs a
    loss scaler, which gradient attention's double backward is not tested with: it runs float32."""
    if device.type == "cuda":
        return torch.cuda.get_device_capability(device)[0] >= 8
    flags = _cpu_flags()
    return device.type == "cpu" and ("amx_bf16" in flags or ("avx512_bf16" in flags and _cpu_vendor() == "AuthenticAMD"))


@lru_cache(maxsize=1)
def _cpu_flags() -> frozenset[str]:
    return frozenset(_cpuinfo("flags").split())


@lru_cache(maxsize=1)
def _cpu_vendor() -> str:
    return _cpuinfo("vendor_id")


def _cpuinfo(field: str) -> str:
    """The first `field` of /proc/cpuinfo ("" where there is none)."""
    try:
        with open("/proc/cpuinfo") as info:
            return next((line.split(":", 1)[1].strip() for line in info if line.split(":")[0].strip() == field), "")
    except OSError:  # not Linux: no way to tell cheaply, and float32 is the safe choice
        return ""


def flush_denormals() -> None:
    """Compute with float32 subnormals (magnitudes below 1.2e-38) as zeros on the CPU. Late in a
    run, weights that weight decay drives towards zero become subnormal, and an x86 CPU computes
    with them in a slow path: on a 2-core Intel Xeon (2026-12-01) a course run's CE epoch grew
    from 1.0 s to 2.2 s over its last 25 epochs, with 6,000-12,000 of the student's 267,738
    weights subnormal at the end (`scripts/denormals.py` measures both ways). Values that small
    change no output. It holds for the calling thread and the threads started after it, so kdlib
    sets it on import, before torch starts its thread pool, and again when training starts."""
    torch.set_flush_denormal(True)


def autocast(device: torch.device, amp: str = "auto"):
    if precision(device, amp) == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return nullcontext()


def describe_cpu() -> str:
    """The CPU by model name, cores and its fastest vector instructions: what every timing must name."""
    try:
        with open("/proc/cpuinfo") as info:
            names = [line.split(":", 1)[1].strip() for line in info if line.startswith("model name")]
    except OSError:
        names = []
    flags = _cpu_flags()
    isa = ("AVX512-BF16" if "avx512_bf16" in flags else "AVX512" if "avx512f" in flags else
           "AVX2" if "avx2" in flags else "no AVX2 (or not Linux)")
    return f"{names[0] if names else 'CPU'}, {os.cpu_count()} cores, {isa}"


def describe_device(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    threads = torch.get_num_threads()
    return f"CPU ({os.cpu_count()} cores, {threads} thread{'s' if threads > 1 else ''})"
