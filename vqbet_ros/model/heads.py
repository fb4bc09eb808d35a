"""VQ-BeT code and offset heads and their losses (docs/vqbet.md §1, §4).

The code head gives, per residual layer, logits over the C codes; the offset head gives one offset chunk per
(layer, code). A prediction samples one code per layer, decodes the sum of their code vectors with the frozen
tokenizer and adds the selected offsets summed over layers.

Dimension letters: N feature rows (B·T), F feature width, Nq residual layers, C codes per layer,
W chunk length, A action dim.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from vqbet_ros.config_io import ConfigError
from vqbet_ros.model.config import HeadConfig


def mlp(in_dim: int, hidden: list[int], out_dim: int) -> nn.Sequential:
    """Linear -> ReLU for each hidden width, then Linear (the official `MLP` helper)."""
    layers: list[nn.Module] = []
    for width in hidden:
        layers += [nn.Linear(in_dim, width), nn.ReLU()]
        in_dim = width
    layers.append(nn.Linear(in_dim, out_dim))
    return nn.Sequential(*layers)


def focal_loss(logits: torch.Tensor, targets: torch.Tensor, gamma: float) -> torch.Tensor:
    """Per-row focal loss -(1 - p_t)^gamma * log p_t for logits (N, C), targets (N,) -> (N,) (docs/vqbet.md §4)."""
    logp = F.log_softmax(logits, dim=-1).gather(1, targets[:, None]).squeeze(1)  # (N,)
    return -(1.0 - logp.exp()).pow(gamma) * logp


def sample_codes(logits: torch.Tensor, temperature: float = 1.0, argmax: bool = False,
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """logits (N, C) -> codes (N,): multinomial on softmax(logits / temperature) (official τ = 1,
    LeRobot 0.1), or the most likely code when `argmax` (Deviation option, docs/vqbet.md §10.14)."""
    if argmax:
        return logits.argmax(dim=-1)
    probs = torch.softmax(logits / temperature, dim=-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(1)  # (N,)


class CodeHead(nn.Module):
    """Code logits per residual layer.

    Joint (official default): one MLP F -> 1024 -> 1024 -> Nq·C. Sequential (official option): a primary MLP
    F -> 512 -> 512 -> C and a secondary MLP (F + one-hot primary) -> 512 -> C; the official widths are half
    the joint head's, so they derive from `hidden_dim` // 2 (docs/vqbet.md §4).
    """

    def __init__(self, config: HeadConfig, in_dim: int, n_layers: int, codebook_size: int):
        super().__init__()
        self.sequential, self.n_layers, self.codebook_size = config.sequential_codes, n_layers, codebook_size
        h = config.hidden_dim
        if self.sequential:
            if n_layers != 2:
                raise ConfigError(f"`heads.sequential_codes` needs `tokenizer.n_vq_layers: 2`, got {n_layers}")
            self.primary = mlp(in_dim, [h // 2, h // 2], codebook_size)
            self.secondary = mlp(in_dim + codebook_size, [h // 2], codebook_size)
        else:
            self.joint = mlp(in_dim, [h, h], n_layers * codebook_size)

    def forward(self, features: torch.Tensor, primary: torch.Tensor | None = None) -> torch.Tensor:
        """features (N, F) -> logits (N, Nq, C). Sequential mode conditions the secondary logits on
        `primary` (N,) codes: the ground truth for the loss (official `_calc_loss`)."""
        if not self.sequential:
            return self.joint(features).view(-1, self.n_layers, self.codebook_size)  # (N, Nq, C)
        if primary is None:
            raise ValueError("sequential code head: forward needs the primary codes to condition on "
                             "(ground truth in training); use sample() at inference")
        primary_logits = self.primary(features)  # (N, C)
        secondary_logits = self.secondary_logits(features, primary)  # (N, C)
        return torch.stack([primary_logits, secondary_logits], dim=1)  # (N, 2, C)

    def secondary_logits(self, features: torch.Tensor, primary: torch.Tensor) -> torch.Tensor:
        onehot = F.one_hot(primary, self.codebook_size).to(features.dtype)  # (N, C)
        return self.secondary(torch.cat([features, onehot], dim=1))  # (N, C)

    def sample(self, features: torch.Tensor, temperature: float = 1.0, argmax: bool = False,
               generator: torch.Generator | None = None) -> torch.Tensor:
        """features (N, F) -> sampled codes (N, Nq). Sequential mode samples the secondary code conditioned
        on the *sampled* primary, in training and at inference alike (official `_predict`)."""
        if not self.sequential:
            logits = self.forward(features)  # (N, Nq, C)
            n = logits.shape[0]
            flat = sample_codes(logits.reshape(n * self.n_layers, -1), temperature, argmax, generator)  # (N*Nq,)
            return flat.view(n, self.n_layers)  # (N, Nq)
        primary = sample_codes(self.primary(features), temperature, argmax, generator)  # (N,)
        secondary = sample_codes(self.secondary_logits(features, primary), temperature, argmax, generator)
        return torch.stack([primary, secondary], dim=1)  # (N, 2)


class OffsetHead(nn.Module):
    """features (N, F) -> one offset chunk per (layer, code), (N, Nq, C, W·A) (official MLP 256 -> 1024 ->
    1024 -> Nq·C·W·A, docs/vqbet.md §4)."""

    def __init__(self, config: HeadConfig, in_dim: int, n_layers: int, codebook_size: int, chunk_flat: int):
        super().__init__()
        self.shape = (n_layers, codebook_size, chunk_flat)
        self.mlp = mlp(in_dim, [config.hidden_dim, config.hidden_dim], n_layers * codebook_size * chunk_flat)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.mlp(features).view(-1, *self.shape)  # (N, Nq, C, W*A)

    @staticmethod
    def select(offsets: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        """offsets (N, Nq, C, W·A), codes (N, Nq) -> each layer's offset at its code, summed over layers
        (N, W·A) (docs/vqbet.md §1)."""
        index = codes[:, :, None, None].expand(-1, -1, 1, offsets.shape[-1])  # (N, Nq, 1, W*A)
        return offsets.gather(2, index).squeeze(2).sum(dim=1)  # (N, W*A)
