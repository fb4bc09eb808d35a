"""The two training objectives as nn.Modules, so DistributedDataParallel can wrap them.

DDP hooks `forward`, while the policy's losses are methods (`tokenizer_loss`, `prior_loss`); these thin modules
make each stage's loss a forward. `PriorObjective` also does the frame-sharing of sequence samples: every
frame is encoded once, then the tokens are cut into the h-windows ending at each target position.

Letters: B samples, P frames per sample, T = h history, N windows, Dt token size, W chunk length, A action dim.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from vqbet_ros.model.policy import VQBeTPolicy


class TokenizerObjective(nn.Module):
    """Stage 1: chunks (B, W, A) -> the tokenizer's loss dict (docs/vqbet.md §2)."""

    def __init__(self, policy: VQBeTPolicy):
        super().__init__()
        self.tokenizer = policy.tokenizer  # only the tokenizer's parameters take part in stage 1

    def forward(self, chunks: torch.Tensor) -> dict[str, torch.Tensor]:
        out = self.tokenizer(chunks)
        return {k: out[k] for k in ("loss", "recon_l1", "commitment")}


def cut_windows(x: torch.Tensor, history: int) -> torch.Tensor:
    """(B, P, ...) -> (B * (P - T + 1), T, ...): the T-step window ending at every position >= T - 1."""
    B, P = x.shape[:2]
    w = x.unfold(1, history, 1)  # (B, P-T+1, ..., T)
    w = w.movedim(-1, 2)  # (B, P-T+1, T, ...)
    return w.reshape(B * (P - history + 1), history, *x.shape[2:])


class PriorObjective(nn.Module):
    """Stage 2: a batch of windows or sequences -> `prior_loss` (docs/vqbet.md §3, §4).

    Window samples are (B, T, ...). Sequence samples are (B, P, ...) with P > T: the frames are encoded once
    (B, P, Dt) and cut into the windows ending at P - T + 1 positions, exactly the windows a window sampler
    would draw there. `loss_positions="last"` marks every position but the last of each window as padding,
    so `prior_loss` trains only the executed position (and skips the others before the heads).
    """

    def __init__(self, policy: VQBeTPolicy, n_obs_steps: int, loss_positions: str):
        super().__init__()
        self.policy = policy
        self.n_obs_steps = n_obs_steps
        self.loss_positions = loss_positions

    def forward(self, obs: dict[str, torch.Tensor], actions: torch.Tensor, action_is_pad: torch.Tensor
                ) -> dict[str, torch.Tensor]:
        T = self.n_obs_steps
        tokens = self.policy.encode_observations(obs)  # (B, P, Dt), each frame once
        if tokens.shape[1] > T:
            tokens = cut_windows(tokens, T)  # (N, T, Dt)
            actions = cut_windows(actions, T)  # (N, T, W, A)
            action_is_pad = cut_windows(action_is_pad, T)  # (N, T, W)
        if self.loss_positions == "last":
            action_is_pad = action_is_pad.clone()
            action_is_pad[:, :-1] = True
        out = self.policy.prior_loss(tokens, actions, action_is_pad)
        out["windows"] = torch.tensor(float((~action_is_pad[:, -1]).any(-1).sum()))
        return out
