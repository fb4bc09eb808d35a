"""Stage 1 of VQ-BeT: the residual VQ-VAE that turns an action chunk into Nq discrete codes (docs/vqbet.md §2).

An MLP encoder maps the flattened chunk (W·A) to a latent x in R^D; a residual vector quantiser picks, per
layer i, the code nearest to the residual left by the layers before it (layer 0 is the paper's "primary"
code, layer 1 the "secondary"); an MLP decoder maps the sum of the chosen code vectors back to a chunk.
Codebooks learn only by EMA (k-means style running means), never by gradient.

Dimension letters: N chunks, W chunk length, A action dim, D latent width, Nq residual layers, C codes per layer.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from vqbet_ros.model.config import TokenizerConfig


def _mlp(in_dim: int, hidden_dim: int, n_hidden_layers: int, out_dim: int) -> nn.Sequential:
    """in -> hidden -> ReLU (x n_hidden_layers) -> out, orthogonal weights and zero bias as the official
    `EncoderMLP` (`vqvae/vqvae.py`, `weights_init_encoder`)."""
    layers: list[nn.Module] = []
    width = in_dim
    for _ in range(n_hidden_layers):
        layers += [nn.Linear(width, hidden_dim), nn.ReLU()]
        width = hidden_dim
    layers.append(nn.Linear(width, out_dim))
    for layer in layers:
        if isinstance(layer, nn.Linear):
            nn.init.orthogonal_(layer.weight)
            nn.init.zeros_(layer.bias)
    return nn.Sequential(*layers)


def _kmeans(x: torch.Tensor, n_clusters: int, n_iters: int = 10) -> tuple[torch.Tensor, torch.Tensor]:
    """Plain Lloyd k-means on x (N, D): returns centres (C, D) and cluster counts (C,)."""
    idx = torch.randint(0, x.shape[0], (n_clusters,), device=x.device)
    centres = x[idx].clone()
    for _ in range(n_iters):
        assign = torch.cdist(x, centres).argmin(dim=1)  # (N,)
        counts = torch.bincount(assign, minlength=n_clusters).to(x.dtype)  # (C,)
        sums = torch.zeros_like(centres).index_add_(0, assign, x)  # (C, D)
        centres = torch.where(counts[:, None] > 0, sums / counts.clamp(min=1)[:, None], centres)
    return centres, counts


class ResidualVQ(nn.Module):
    """Nq stacked EMA vector quantisers over residuals (official: lucidrains `ResidualVQ`, docs/vqbet.md §2).

    Buffers (all persisted in checkpoints): `codebooks` (Nq, C, D), `cluster_size` (Nq, C) and
    `embed_sum` (Nq, C, D) EMA statistics, `initted` (k-means done), `frozen` (stage 2: no more EMA).
    """

    def __init__(self, n_layers: int, codebook_size: int, dim: int, decay: float, eps: float,
                 kmeans_init: bool = False, dead_code_threshold: float = 0.0):
        super().__init__()
        self.n_layers, self.codebook_size, self.dim = n_layers, codebook_size, dim
        self.decay, self.eps = decay, eps
        self.kmeans_init, self.dead_code_threshold = kmeans_init, dead_code_threshold
        # Official init: kaiming-uniform random codes, zero cluster sizes, EMA sums = codes (docs/vqbet.md §2).
        codebooks = torch.empty(n_layers, codebook_size, dim)
        for layer in codebooks:
            nn.init.kaiming_uniform_(layer)
        self.register_buffer("codebooks", codebooks)
        self.register_buffer("cluster_size", torch.zeros(n_layers, codebook_size))
        self.register_buffer("embed_sum", codebooks.clone())
        self.register_buffer("initted", torch.tensor(not kmeans_init))
        self.register_buffer("frozen", torch.tensor(False))

    def nearest_codes(self, residual: torch.Tensor, layer: int) -> torch.Tensor:
        """Index (N,) of the code in `layer` nearest (Euclidean) to each residual (N, D)."""
        codebook = self.codebooks[layer]  # (C, D)
        dist = (residual.pow(2).sum(1, keepdim=True) - 2 * residual @ codebook.t()
                + codebook.pow(2).sum(1)[None, :])  # (N, C)
        return dist.argmin(dim=1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x (N, D) -> (quantized (N, D) with straight-through gradient, codes (N, Nq), commitment loss).

        The commitment loss is sum over layers of MSE(residual_i, sg(code_i)) (docs/vqbet.md §1).
        EMA updates run only in training mode and when not frozen.
        """
        # Nearest-code search and EMA statistics stay in float32 under mixed precision: bf16 distances
        # would flip code assignments.
        with torch.autocast(x.device.type, enabled=False):
            return self._quantize(x.float())

    def _quantize(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        update = self.training and not bool(self.frozen)
        residual = x
        quantized = torch.zeros_like(x)
        codes, commitment = [], x.new_zeros(())
        for i in range(self.n_layers):
            if update and self.kmeans_init and not bool(self.initted):
                self._kmeans_init_layer(i, residual.detach())
            idx = self.nearest_codes(residual.detach(), i)  # (N,)
            code = self.codebooks[i][idx]  # (N, D)
            if update:
                self._ema_update(i, residual.detach(), idx)
            commitment = commitment + F.mse_loss(residual, code.detach())
            # Straight-through per layer, as the official ResidualVQ (each layer's output carries the
            # gradient of its own input residual).
            quantized = quantized + residual + (code - residual).detach()
            residual = residual - code.detach()
            codes.append(idx)
        if update and self.kmeans_init:
            self.initted.fill_(True)
        return quantized, torch.stack(codes, dim=1), commitment  # (N, D), (N, Nq), ()

    def codes_to_latent(self, codes: torch.Tensor) -> torch.Tensor:
        """codes (..., Nq) -> sum of the chosen code vectors (..., D)."""
        vectors = [self.codebooks[i][codes[..., i]] for i in range(self.n_layers)]  # Nq x (..., D)
        return torch.stack(vectors, dim=0).sum(dim=0)

    @torch.no_grad()
    def _ema_update(self, layer: int, residual: torch.Tensor, idx: torch.Tensor) -> None:
        # lucidrains EuclideanCodebook: EMA of counts and sums, Laplace-smoothed counts (docs/vqbet.md §2).
        onehot = F.one_hot(idx, self.codebook_size).to(residual.dtype)  # (N, C)
        self.cluster_size[layer].mul_(self.decay).add_(onehot.sum(0), alpha=1 - self.decay)
        self.embed_sum[layer].mul_(self.decay).add_(onehot.t() @ residual, alpha=1 - self.decay)
        size = self.cluster_size[layer]
        total = size.sum()
        smoothed = (size + self.eps) / (total + self.codebook_size * self.eps) * total  # (C,)
        self.codebooks[layer].copy_(self.embed_sum[layer] / smoothed[:, None])
        if self.dead_code_threshold > 0:
            self._restart_dead_codes(layer, residual)

    @torch.no_grad()
    def _restart_dead_codes(self, layer: int, residual: torch.Tensor) -> None:
        """Deviation (option, off by default; the official code never restarts codes, docs/vqbet.md §10.8): re-seed
        codes whose EMA count fell below the threshold with random residuals of this batch."""
        dead = self.cluster_size[layer] < self.dead_code_threshold  # (C,)
        n_dead = int(dead.sum())
        if n_dead == 0:
            return
        samples = residual[torch.randint(0, residual.shape[0], (n_dead,), device=residual.device)]
        self.codebooks[layer][dead] = samples
        self.embed_sum[layer][dead] = samples * self.dead_code_threshold
        self.cluster_size[layer][dead] = self.dead_code_threshold

    @torch.no_grad()
    def _kmeans_init_layer(self, layer: int, residual: torch.Tensor) -> None:
        """Deviation (option, off by default; official uses random init, docs/vqbet.md §10.8): k-means on the first
        training batch's residuals."""
        centres, counts = _kmeans(residual, self.codebook_size)
        self.codebooks[layer].copy_(centres)
        self.embed_sum[layer].copy_(centres * counts[:, None])
        self.cluster_size[layer].copy_(counts)


class ResidualVQVAE(nn.Module):
    """The action tokenizer: chunk (N, W, A) <-> codes (N, Nq). Chunks are normalized actions."""

    def __init__(self, config: TokenizerConfig, chunk_size: int, action_dim: int):
        super().__init__()
        self.config = config
        self.chunk_size, self.action_dim = chunk_size, action_dim
        flat = chunk_size * action_dim
        self.encoder = _mlp(flat, config.hidden_dim, config.n_hidden_layers, config.latent_dim)
        self.decoder = _mlp(config.latent_dim, config.hidden_dim, config.n_hidden_layers, flat)
        self.vq = ResidualVQ(config.n_vq_layers, config.codebook_size, config.latent_dim, config.ema_decay,
                             config.ema_eps, config.kmeans_init, config.dead_code_threshold)

    @property
    def frozen(self) -> bool:
        return bool(self.vq.frozen)

    def freeze(self) -> None:
        """Stage 2 starts: no more EMA updates and no gradients (docs/vqbet.md §2, §10.9).

        `fill_` keeps the buffer in place (LeRobot's DDP fix, docs/vqbet.md §10.11)."""
        self.vq.frozen.fill_(True)
        self.requires_grad_(False)

    def forward(self, chunks: torch.Tensor) -> dict[str, torch.Tensor]:
        """Stage-1 loss on chunks (N, W, A): recon_weight * L1 + commitment_weight * commitment (docs/vqbet.md §1).

        In training mode (and not frozen) this also EMA-updates the codebooks.
        """
        n = chunks.shape[0]
        flat = chunks.reshape(n, self.chunk_size * self.action_dim)  # (N, W*A)
        latent = self.encoder(flat)  # (N, D)
        quantized, codes, commitment = self.vq(latent)
        recon = self.decoder(quantized)  # (N, W*A)
        recon_l1 = (flat - recon).abs().mean()
        loss = self.config.recon_weight * recon_l1 + self.config.commitment_weight * commitment
        return {"loss": loss, "recon_l1": recon_l1, "commitment": commitment, "codes": codes}

    @torch.no_grad()
    def encode_codes(self, chunks: torch.Tensor) -> torch.Tensor:
        """chunks (..., W, A) -> codes (..., Nq); never updates the codebooks."""
        lead = chunks.shape[:-2]
        flat = chunks.reshape(-1, self.chunk_size * self.action_dim)  # (N, W*A)
        latent = self.encoder(flat)  # (N, D)
        residual, codes = latent.float(), []
        with torch.autocast(latent.device.type, enabled=False):  # float32 distances, as in forward
            for i in range(self.vq.n_layers):
                idx = self.vq.nearest_codes(residual, i)  # (N,)
                residual = residual - self.vq.codebooks[i][idx]
                codes.append(idx)
        return torch.stack(codes, dim=1).reshape(*lead, self.vq.n_layers)  # (..., Nq)

    @torch.no_grad()
    def decode_codes(self, codes: torch.Tensor) -> torch.Tensor:
        """codes (..., Nq) -> decoded chunk (..., W, A) = decoder(sum of the code vectors)."""
        latent = self.vq.codes_to_latent(codes)  # (..., D)
        return self.decoder(latent).float().reshape(*codes.shape[:-1], self.chunk_size, self.action_dim)

    @torch.no_grad()
    def code_usage(self, chunks: torch.Tensor) -> dict[str, int]:
        """Distinct codes per layer and distinct code tuples (pairs for Nq = 2) used by chunks (N, W, A),
        the stage-1 monitor of both reference implementations (docs/vqbet.md §2, §10.8)."""
        codes = self.encode_codes(chunks)  # (N, Nq)
        usage = {f"distinct_codes_layer_{i}": int(codes[:, i].unique().numel()) for i in range(codes.shape[1])}
        usage["distinct_pairs"] = int(torch.unique(codes, dim=0).shape[0])
        return usage
