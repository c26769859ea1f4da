"""Several models of one architecture trained as one: their weights stacked, each stage run
once for all of them.

Why: a LightNN step is a few milliseconds of GPU work spread over dozens of small kernel
launches, so on a GPU the student trains launch-bound. Stacked, N seeds of a method cost about
the launches of one: torch.func.vmap turns each convolution into one grouped convolution and
each linear layer into one batched matrix product over the N members.

    members = Members([build("LightNN", seed=s) for s in (0, 1, 2)])
    logits, stages = members.forward_features(x)   # x: the members' batches, one after another
    ...train members.parameters()...
    members.write_back()                           # the trained weights into each model

Each member keeps its own weights, gradients and (Adam being elementwise) optimizer state:
the loss the engine minimizes is the sum of the members' own batch-mean losses, and no weight
is shared. What members do share is the random stream of their dropout masks (vmap draws them
for all at once), so a member's masks differ from those of the same seed trained apart: the
result is as good, not bit for bit the same (tests/test_members.py checks the rest exactly).
"""

from __future__ import annotations

import copy
import warnings

import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from .models import segments


class Members(nn.Module):
    """N models of one architecture as one module whose batch is the members' batches, one
    after another (member i has rows i*B to (i+1)*B)."""

    def __init__(self, models: list[nn.Module]):
        super().__init__()
        if len({type(m) for m in models}) != 1:
            raise ValueError("Members must share one architecture: got "
                             f"{sorted({type(m).__name__ for m in models})}.")
        self.size = len(models)
        self._models = list(models)  # a plain list: their own weights are not trained here
        self._pieces = [segments(m) for m in models]
        # The modules vmap calls, with the stacked weights swapped in by functional_call.
        self._base = [copy.deepcopy(piece) for piece in self._pieces[0]]
        self._names: list[tuple[dict, dict]] = []  # per stage: {name: attribute} for weights, buffers
        for k, stage in enumerate(zip(*self._pieces)):
            params, buffers = stack_module_state(list(stage))
            names = ({}, {})
            for name, value in params.items():
                names[0][name] = attribute = f"s{k}_{name.replace('.', '_')}"
                self.register_parameter(attribute, nn.Parameter(value))
            for name, value in buffers.items():
                names[1][name] = attribute = f"s{k}_{name.replace('.', '_')}"
                self.register_buffer(attribute, value)
            self._names.append(names)

    def train(self, mode: bool = True) -> "Members":
        super().train(mode)
        for piece in self._base:  # dropout and batch norm follow the members' mode
            piece.train(mode)
        return self

    def forward_features(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Logits (N*B, K) and stage outputs (N*B, C, H, W) for the members' batches x (N*B, ...).

        Each stage output is the tensor the next stage reads, so a gradient of the logits with
        respect to it (gradient attention) is taken as for a single model."""
        stages = []
        for k, piece in enumerate(self._base):
            params = {name: getattr(self, a) for name, a in self._names[k][0].items()}
            buffers = {name: getattr(self, a) for name, a in self._names[k][1].items()}

            def run(p, b, inputs, piece=piece):
                return functional_call(piece, (p, b), (inputs,))
            with warnings.catch_warnings():
                # The weight-normalized layers of the reference family have no vmap rule yet:
                # torch runs them member by member, correctly; the warning would only repeat.
                warnings.filterwarnings("ignore", message=".*batching rule.*")
                out = vmap(run, randomness="different")(params, buffers, x.unflatten(0, (self.size, -1)))
            x = out.flatten(0, 1)
            stages.append(x)
        return x, stages[:-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_features(x)[0]

    @torch.no_grad()
    def write_back(self) -> list[nn.Module]:
        """Copy the stacked weights and buffers into the members' own models; return them."""
        for k, names in enumerate(self._names):
            for i, piece in enumerate(p[k] for p in self._pieces):
                own = {**dict(piece.named_parameters()), **dict(piece.named_buffers())}
                for name, attribute in {**names[0], **names[1]}.items():
                    own[name].copy_(getattr(self, attribute)[i])
        return self._models
