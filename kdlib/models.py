"""The teacher and student CNNs of the official PyTorch knowledge-distillation tutorial.

    DeepNN  (teacher): 1,186,986 parameters for 10 classes; stage outputs 64x16x16, 32x8x8
    LightNN (student):   267,738 parameters for 10 classes; stage outputs 16x16x16, 16x8x8

Both keep the tutorial's layout (`features` then `classifier`), so their state dicts match
the tutorial's. `forward_features` returns the logits together with the feature map after
each pooling stage, read off the same `features` Sequential: no second copy of a model class.
"""

from __future__ import annotations

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


ARCHITECTURES = {"DeepNN": DeepNN, "LightNN": LightNN}


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


def build(name: str, num_classes: int = 10, seed: int | None = None) -> nn.Module:
    """A model by its class name ("DeepNN" or "LightNN"), its weights drawn from `seed` if given."""
    if name not in ARCHITECTURES:
        raise ValueError(f"Unknown architecture {name!r}: expected one of {sorted(ARCHITECTURES)}.")
    if seed is None:
        return ARCHITECTURES[name](num_classes)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return ARCHITECTURES[name](num_classes)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
