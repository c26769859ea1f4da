"""The teacher and student CNNs, in two families.

The official PyTorch knowledge-distillation tutorial's ("tutorial", the default):

    DeepNN  (teacher): 1,186,986 parameters for 10 classes; stage outputs 64x16x16, 32x8x8
    LightNN (student):   267,738 parameters for 10 classes; stage outputs 16x16x16, 16x8x8

The reference notebook's ("reference": CharvakaSynapse/Knowledge-Distillation), whose table
this series starts from: weight-normalized convolutions, each followed by ELU and BatchNorm

    ReferenceDeepNN  (teacher): 1,185,674 parameters; stages 256x16x16, 128x8x8, 64x4x4, 32x2x2
    ReferenceLightNN (student):   268,090 parameters; stages 16x16x16, 16x8x8
                                (the reference counts 268,091: its student also holds an unused
                                scalar, a leftover its forward pass never reads)

All keep the tutorial's layout (`features` then `classifier`). `forward_features` returns the
logits together with the feature map after each pooling stage, read off the same `features`
Sequential: no second copy of a model class.
"""

from __future__ import annotations

from collections import OrderedDict
from functools import lru_cache

import torch
from torch import nn


class DeepNN(nn.Module):
    """Teacher: four 3x3 convolutions in two pooled stages, then a 2048-512-classes MLP."""

    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.num_classes = num_classes
        self.features = nn.Sequential(
            nn.Conv2d(3, 128, kernel_size=3, padding=1), nn.ReLU(),
            nn.Conv2d(128, 64, kernel_size=3, padding=1), nn.ReLU(),
            nn.MaxPool2d(kernel_size=2, stride=2),
            nn.Conv2d(64, 64, kernel_size=3, padding=1), nn.ReLU(),
            nn.Conv2d(64, 32, kernel_size=3, padding=1), nn.ReLU(),
            nn.MaxPool2d(kernel_size=2, stride=2),
        )
        self.classifier = nn.Sequential(
            nn.Linear(2048, 512), nn.ReLU(), nn.Dropout(0.1),
            nn.Linear(512, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.features(x), 1))


class LightNN(nn.Module):
    """Student: two 3x3 convolutions, each followed by pooling, then a 1024-256-classes MLP."""

    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.num_classes = num_classes
        self.features = nn.Sequential(
            nn.Conv2d(3, 16, kernel_size=3, padding=1), nn.ReLU(),
            nn.MaxPool2d(kernel_size=2, stride=2),
            nn.Conv2d(16, 16, kernel_size=3, padding=1), nn.ReLU(),
            nn.MaxPool2d(kernel_size=2, stride=2),
        )
        self.classifier = nn.Sequential(
            nn.Linear(1024, 256), nn.ReLU(), nn.Dropout(0.1),
            nn.Linear(256, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.features(x), 1))


def _conv_elu_bn(channels_in: int, channels_out: int) -> list[nn.Module]:
    """The reference's unit: a weight-normalized 3x3 convolution, ELU, then BatchNorm."""
    conv = nn.utils.parametrizations.weight_norm(nn.Conv2d(channels_in, channels_out, 3, padding=1))
    return [conv, nn.ELU(), nn.BatchNorm2d(channels_out)]


class ReferenceDeepNN(nn.Module):
    """The reference's teacher: four pooled stages of two convolution units each
    (256, 128, 64, 32 channels), then a weight-normalized 128-32 layer, ELU, dropout, 32-classes."""

    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.num_classes = num_classes
        layers, channels = [], 3
        for width in (256, 128, 64, 32):
            layers += [*_conv_elu_bn(channels, width), *_conv_elu_bn(width, width), nn.MaxPool2d(2, 2)]
            channels = width
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(
            nn.utils.parametrizations.weight_norm(nn.Linear(128, 32)), nn.ELU(), nn.Dropout(0.1),
            nn.Linear(32, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.features(x), 1))


class ReferenceLightNN(nn.Module):
    """The reference's student: the tutorial's LightNN with weight-normalized convolutions,
    each followed by ELU and BatchNorm, and a weight-normalized first linear layer."""

    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.num_classes = num_classes
        self.features = nn.Sequential(
            *_conv_elu_bn(3, 16), nn.MaxPool2d(2, 2),
            *_conv_elu_bn(16, 16), nn.MaxPool2d(2, 2),
        )
        self.classifier = nn.Sequential(
            nn.utils.parametrizations.weight_norm(nn.Linear(1024, 256)), nn.ELU(), nn.Dropout(0.1),
            nn.Linear(256, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.features(x), 1))


ARCHITECTURES = {"DeepNN": DeepNN, "LightNN": LightNN,
                 "ReferenceDeepNN": ReferenceDeepNN, "ReferenceLightNN": ReferenceLightNN}
# family -> (teacher, student): the one way to ask for either family everywhere
FAMILIES = {"tutorial": ("DeepNN", "LightNN"), "reference": ("ReferenceDeepNN", "ReferenceLightNN")}


def teacher_architecture(family: str = "tutorial") -> str:
    return _family(family)[0]


def student_architecture(family: str = "tutorial") -> str:
    return _family(family)[1]


def _family(family: str) -> tuple[str, str]:
    if family not in FAMILIES:
        raise ValueError(f"Unknown model family {family!r}: expected one of {sorted(FAMILIES)}.")
    return FAMILIES[family]


def forward_features(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Logits and the feature map after each pooling stage, in one forward pass.

    Works for any model laid out as `features` (a Sequential) then `classifier`: the stage
    outputs are simply the outputs of its MaxPool2d layers.
    """
    stages = []
    for layer in model.features:
        x = layer(x)
        if isinstance(layer, nn.MaxPool2d):
            stages.append(x)
    return model.classifier(torch.flatten(x, 1)), stages


@lru_cache(maxsize=None)
def stage_shapes(name: str) -> tuple[tuple[int, int, int], ...]:
    """(channels, height, width) of each stage output of architecture `name` for a 32x32 image.
    (The probe model's weights come from a seed of their own: asking never moves torch's
    global random stream, which a run's dropout masks are drawn from.)"""
    with torch.no_grad():
        _, stages = forward_features(build(name, seed=0).eval(), torch.zeros(1, 3, 32, 32))
    return tuple(tuple(stage.shape[1:]) for stage in stages)


def hint_stage(family: str = "tutorial") -> int:
    """Which of the teacher's stages the feature methods match with the student's last stage
    (the hidden representation its classifier reads): the one of the same spatial size,
    8x8 in both families (the tutorial's DeepNN: its last, 32x8x8; the reference's: 128x8x8)."""
    student = stage_shapes(student_architecture(family))[-1]
    teacher = stage_shapes(teacher_architecture(family))
    return next(i for i, shape in enumerate(teacher) if shape[1:] == student[1:])


def segments(model: nn.Module) -> list[nn.Module]:
    """The model cut after each pooling stage: one Sequential per stage, then the head
    (flatten and classifier). Run in a chain they are the model; their outputs between them
    are `forward_features`'s stages. The pieces share the model's layers (and keep their
    names), so that each can be compiled, or run for several stacked models (kdlib.members),
    while a gradient with respect to a stage output still reaches the logits."""
    pieces, layers = [], []
    for name, layer in model.features.named_children():
        layers.append((name, layer))
        if isinstance(layer, nn.MaxPool2d):
            pieces.append(nn.Sequential(OrderedDict(layers)))
            layers = []
    head = layers + [("flatten", nn.Flatten()), ("classifier", model.classifier)]
    return pieces + [nn.Sequential(OrderedDict(head))]


def build(name: str, num_classes: int = 10, seed: int | None = None) -> nn.Module:
    """A model by its class name (a key of ARCHITECTURES), its weights drawn from `seed` if given."""
    if name not in ARCHITECTURES:
        raise ValueError(f"Unknown architecture {name!r}: expected one of {sorted(ARCHITECTURES)}.")
    if seed is None:
        return ARCHITECTURES[name](num_classes)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return ARCHITECTURES[name](num_classes)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
