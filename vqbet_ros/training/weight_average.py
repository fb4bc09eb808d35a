"""Exponential moving average of a policy's weights during stage 2.

Behaviour cloning with a high learning rate ends on whichever minibatch came last; the average of the recent
weights is a smoother policy, and averaged weights are what Diffusion Policy and LeRobot's diffusion recipe
evaluate. Training updates the live weights; checkpoints and rollout evaluations use the average.
"""
from __future__ import annotations

import contextlib

import torch
import torch.nn as nn


class WeightAverage:
    """EMA of every floating-point tensor in `module.state_dict()` (parameters and buffers).

    The decay ramps up as (1 + n) / (10 + n) over the first updates, so the average is not dominated by
    the weights it started from.
    """

    def __init__(self, module: nn.Module, decay: float):
        if not 0.0 < decay < 1.0:
            raise ValueError(f"`ema_decay`: must be in (0, 1), got {decay}")
        self.decay = decay
        self.updates = 0
        self.average = {k: v.detach().clone() for k, v in module.state_dict().items() if v.is_floating_point()}

    @torch.no_grad()
    def update(self, module: nn.Module) -> None:
        decay = min(self.decay, (1 + self.updates) / (10 + self.updates))
        live = module.state_dict()
        keys = list(self.average)
        torch._foreach_lerp_([self.average[k] for k in keys], [live[k].detach() for k in keys], 1.0 - decay)
        self.updates += 1

    @contextlib.contextmanager
    def applied(self, module: nn.Module):
        """Within the block `module` holds the averaged weights; its live weights come back afterwards."""
        live = {k: v.detach().clone() for k, v in module.state_dict().items() if k in self.average}
        module.load_state_dict(self.average, strict=False)
        try:
            yield module
        finally:
            module.load_state_dict(live, strict=False)

    def state_dict(self) -> dict:
        return {"decay": self.decay, "updates": self.updates, "average": self.average}

    def load_state_dict(self, state: dict) -> None:
        missing = set(self.average) ^ set(state["average"])
        if missing:
            raise ValueError(f"weight average: tensors {sorted(missing)[:5]} differ from the model's")
        self.updates = int(state["updates"])
        self.average = {k: v.clone() for k, v in state["average"].items()}
