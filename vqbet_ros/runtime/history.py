"""Observation history at the checkpoint's fps, and the per-frame feature cache.

The history holds the last T observation tokens, one per control tick (1/fps apart), on the policy's device,
as one preallocated (1, T, Dt) tensor the prior reads directly. After a reset it is padded with the first
token, as LeRobot pads its observation queues with the first observation (docs/ros2.md §8).

`FrameFeatureCache` keeps each camera's features of its newest frame, keyed by the frame's sequence number:
a frame is encoded once, when it first enters the history; a camera slower than fps repeats the cached
features instead of running the backbone again on the same pixels.
"""
from __future__ import annotations

import torch


class ObservationHistory:
    """The last `n_obs_steps` tokens (1, T, Dt), oldest first; empty until the first `push` after `clear`."""

    def __init__(self, n_obs_steps: int, token_dim: int, device: torch.device | str = "cpu",
                 dtype: torch.dtype = torch.float32):
        self.n_obs_steps = n_obs_steps
        self.tokens = torch.zeros(1, n_obs_steps, token_dim, device=device, dtype=dtype)  # (1, T, Dt)
        self.pushed = 0  # tokens pushed since the last clear

    def __len__(self) -> int:
        return min(self.pushed, self.n_obs_steps)

    def clear(self) -> None:
        self.pushed = 0

    def push(self, token: torch.Tensor) -> None:
        """Append `token` (1, Dt) or (Dt,); the first push after a clear fills all T."""
        token = token.reshape(-1)
        if self.pushed == 0:
            self.tokens[0].copy_(token.expand_as(self.tokens[0]))  # reset padding with the first frame
        else:
            self.tokens[0, :-1] = self.tokens[0, 1:].clone()  # shift left by one step
            self.tokens[0, -1].copy_(token)
        self.pushed += 1


class FrameFeatureCache:
    """camera -> (frame sequence number, features (1, Dc)) of the newest encoded frame."""

    def __init__(self):
        self._entries: dict[str, tuple[int, torch.Tensor]] = {}

    def get(self, camera: str, seq: int) -> torch.Tensor | None:
        entry = self._entries.get(camera)
        return entry[1] if entry is not None and entry[0] == seq else None

    def put(self, camera: str, seq: int, features: torch.Tensor) -> None:
        self._entries[camera] = (seq, features)

    def clear(self) -> None:
        self._entries.clear()
