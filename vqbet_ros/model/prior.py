"""Stage 2 backbone of VQ-BeT: a nanoGPT-style causal transformer over observation tokens (docs/vqbet.md §3).

One token per observation step (official layout); optional goal tokens are prepended and their outputs
dropped. Pre-LN blocks, learned absolute position embedding, causal mask, final LayerNorm, bias-free output
Linear to `output_dim` (official 256, docs/vqbet.md §10.5). Submodule names follow nanoGPT (`c_attn`, `wpe`, `ln_f`).

Dimension letters: B batch, T tokens (observation steps), G goal tokens, E n_embd, F output_dim.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from vqbet_ros.model.config import PriorConfig


class CausalSelfAttention(nn.Module):
    def __init__(self, config: PriorConfig):
        super().__init__()
        self.n_head, self.dropout = config.n_head, config.dropout
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd)
        self.resid_dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, E = x.shape
        q, k, v = self.c_attn(x).split(E, dim=2)
        q = q.view(B, T, self.n_head, E // self.n_head).transpose(1, 2)  # (B, nh, T, hs)
        k = k.view(B, T, self.n_head, E // self.n_head).transpose(1, 2)  # (B, nh, T, hs)
        v = v.view(B, T, self.n_head, E // self.n_head).transpose(1, 2)  # (B, nh, T, hs)
        y = F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout if self.training else 0.0,
                                           is_causal=True)  # (B, nh, T, hs)
        y = y.transpose(1, 2).contiguous().view(B, T, E)  # (B, T, E)
        return self.resid_dropout(self.c_proj(y))


class MLP(nn.Module):
    def __init__(self, config: PriorConfig):
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd)
        # Official nanoGPT copy uses the tanh approximation; LeRobot the exact GELU (docs/vqbet.md §3).
        self.gelu = nn.GELU(approximate="tanh" if config.tanh_gelu else "none")
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.c_proj(self.gelu(self.c_fc(x))))


class Block(nn.Module):
    def __init__(self, config: PriorConfig):
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = nn.LayerNorm(config.n_embd)
        self.mlp = MLP(config)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    """tokens (B, T, input_dim) [+ goal (B, G, goal_dim)] -> features (B, T, output_dim), causal in T."""

    def __init__(self, config: PriorConfig, input_dim: int):
        super().__init__()
        self.config = config
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Linear(input_dim, config.n_embd),  # official: a Linear input projection, not a lookup
            wpe=nn.Embedding(config.block_size, config.n_embd),
            drop=nn.Dropout(config.dropout),
            h=nn.ModuleList([Block(config) for _ in range(config.n_layer)]),
            ln_f=nn.LayerNorm(config.n_embd),
        ))
        if config.n_goal_tokens > 0:
            # Deviation: the official code shares `wte` for goals when goal_dim == obs_dim and otherwise
            # concatenates goal features per step; we always prepend goal tokens through their own
            # projection, so the one-token-per-step layout holds for any goal size.
            self.goal_proj = nn.Linear(config.goal_dim, config.n_embd)
        self.lm_head = nn.Linear(config.n_embd, config.output_dim, bias=False)
        self.apply(self._init_weights)
        # GPT-2 paper: residual projections scaled by 1/sqrt(2 * n_layer) (nanoGPT, docs/vqbet.md §3).
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def forward(self, tokens: torch.Tensor, goal: torch.Tensor | None = None) -> torch.Tensor:
        x = self.transformer.wte(tokens)  # (B, T, E)
        n_goal = 0
        if self.config.n_goal_tokens > 0:
            if goal is None or goal.shape[1:] != (self.config.n_goal_tokens, self.config.goal_dim):
                got = None if goal is None else tuple(goal.shape)
                raise ValueError(f"`goal`: expected (B, {self.config.n_goal_tokens}, {self.config.goal_dim}) "
                                 f"for `prior.n_goal_tokens`/`prior.goal_dim`, got {got}")
            x = torch.cat([self.goal_proj(goal), x], dim=1)  # (B, G + T, E)
            n_goal = goal.shape[1]
        elif goal is not None:
            raise ValueError("`goal` given but the config has `prior.n_goal_tokens: 0`")
        length = x.shape[1]
        if length > self.config.block_size:
            raise ValueError(f"{length} tokens exceed `prior.block_size` = {self.config.block_size}; "
                             "shorten the history or raise block_size")
        pos = torch.arange(length, device=x.device)
        x = self.transformer.drop(x + self.transformer.wpe(pos))  # (B, G + T, E)
        for block in self.transformer.h:
            x = block(x)
        x = self.transformer.ln_f(x)
        return self.lm_head(x[:, n_goal:])  # (B, T, F): outputs at goal positions dropped (docs/vqbet.md §3)
