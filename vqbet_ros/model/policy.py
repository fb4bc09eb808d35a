"""VQ-BeT policy: tokenizer + observation encoder + GPT prior + code/offset heads (docs/vqbet.md §1).

Training runs in two stages: `tokenizer_loss` trains the residual VQ-VAE on action chunks; after
`freeze_tokenizer()`, `prior_loss` trains the observation encoder, GPT and heads with ground-truth codes
from the frozen tokenizer. `predict_chunks` samples codes and decodes chunks. Every action tensor here is
normalized (see `normalize.py`); observations are normalized except images (uint8).

Dimension letters: B batch, T observation steps, W chunk length, A action dim, Dt observation token size,
F GPT output width, Nq residual layers, C codes per layer.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from vqbet_ros.model.config import VQBeTConfig
from vqbet_ros.model.encoders import ObservationEncoder
from vqbet_ros.model.heads import CodeHead, OffsetHead, focal_loss
from vqbet_ros.model.prior import GPT
from vqbet_ros.model.tokenizer import ResidualVQVAE


class VQBeTHeads(nn.Module):
    """The code head and the offset head side by side (checkpoint keys `heads.code_head.*`,
    `heads.offset_head.*`; the official code trains them with separate optimisers, docs/vqbet.md §8)."""

    def __init__(self, config: VQBeTConfig):
        super().__init__()
        tok, spec = config.tokenizer, config.spec
        in_dim = config.prior.output_dim
        self.code_head = CodeHead(config.heads, in_dim, tok.n_vq_layers, tok.codebook_size)
        self.offset_head = OffsetHead(config.heads, in_dim, tok.n_vq_layers, tok.codebook_size,
                                      spec.chunk_size * spec.action_dim)


class VQBeTPolicy(nn.Module):
    """Submodules (= checkpoint key prefixes): `tokenizer`, `obs_encoder`, `prior`, `heads`.

    Stage 1: `tokenizer_loss`, `code_usage`, then `freeze_tokenizer`. Stage 2: `encode_observations`,
    `prior_loss` over `prior_parameters()`. Inference: `encode_observations` once per frame, then
    `predict_chunk` on the (B, T, Dt) token history.
    """

    def __init__(self, config: VQBeTConfig, load_pretrained: bool = True):
        """`load_pretrained=False` skips fetching ImageNet weights (the checkpoint loader overwrites them)."""
        super().__init__()
        self.config = config
        spec = config.spec
        self.tokenizer = ResidualVQVAE(config.tokenizer, spec.chunk_size, spec.action_dim)
        self.obs_encoder = ObservationEncoder(spec, config.vision, config.state_hidden_dim, load_pretrained)
        self.prior = GPT(config.prior, self.obs_encoder.token_dim)
        self.heads = VQBeTHeads(config)

    # ---- observations -------------------------------------------------------------------------------
    def encode_observations(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        """Dataset-keyed observations with leading dims (N,) or (B, T) -> tokens (..., Dt), one per step."""
        return self.obs_encoder(obs)

    # ---- stage 1 ------------------------------------------------------------------------------------
    def tokenizer_loss(self, chunks: torch.Tensor) -> dict[str, torch.Tensor]:
        """chunks (B, W, A) -> {"loss", "recon_l1", "commitment"}; EMA-updates codebooks in train mode
        unless frozen (docs/vqbet.md §2)."""
        out = self.tokenizer(chunks)
        return {k: out[k] for k in ("loss", "recon_l1", "commitment")}

    def code_usage(self, chunks: torch.Tensor) -> dict[str, int]:
        """{"distinct_codes_layer_<i>": ..., "distinct_pairs": ...} over chunks (B, W, A)."""
        return self.tokenizer.code_usage(chunks)

    def freeze_tokenizer(self) -> None:
        """Start stage 2: the `frozen` buffer (saved in checkpoints) stops EMA; tokenizer grads are off."""
        self.tokenizer.freeze()

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        result = super().load_state_dict(state_dict, strict=strict, assign=assign)
        if self.tokenizer.frozen:
            self.tokenizer.requires_grad_(False)  # requires_grad is not part of a state dict
        return result

    def prior_parameters(self) -> list[nn.Parameter]:
        """Parameters trained in stage 2: observation encoder, GPT and heads (never the tokenizer)."""
        return [p for m in (self.obs_encoder, self.prior, self.heads) for p in m.parameters() if p.requires_grad]

    # ---- stage 2 ------------------------------------------------------------------------------------
    def _features(self, tokens: torch.Tensor, goal: torch.Tensor | None) -> torch.Tensor:
        B, T, _ = tokens.shape
        return self.prior(tokens, goal).reshape(B * T, -1)  # (B, T, F) -> (B*T, F)

    def prior_loss(self, tokens: torch.Tensor, actions: torch.Tensor, action_is_pad: torch.Tensor,
                   goal: torch.Tensor | None = None, generator: torch.Generator | None = None
                   ) -> dict[str, torch.Tensor]:
        """tokens (B, T, Dt), actions (B, T, W, A) with the chunk of every position, action_is_pad (B, T, W)
        -> {"loss", "primary_code_loss", "secondary_code_loss", "offset_l1"}.

        Loss = w1·FL(primary) + w2·FL(secondary) + λ_off·L1(chunk, decoded(sampled codes) + offsets(sampled
        codes)) (docs/vqbet.md §1, §4). Codes are sampled for the L1 term on purpose (§10.1); the decoded
        centroid is detached. Padded steps are excluded from the L1. A position whose chunk is all padding
        is dropped before the heads; any other position counts fully in the code losses (the GT code of a
        partly padded chunk encodes the pad-filled values, e.g. a held last action).
        """
        if not self.tokenizer.frozen:
            raise RuntimeError("prior_loss needs a frozen tokenizer: call freeze_tokenizer() after stage 1")
        heads = self.config.heads
        B, T, W, A = actions.shape
        features = self._features(tokens, goal)  # (B*T, F)
        chunks = actions.reshape(B * T, W, A)  # (B*T, W, A)
        real_step = ~action_is_pad.reshape(B * T, W)  # (B*T, W)
        # Skipping all-padding positions before the heads saves most of the head cost when a trainer pads
        # every position but the last of each window.
        keep = real_step.any(dim=1)  # (B*T,)
        features, chunks, real_step = features[keep], chunks[keep], real_step[keep]  # (M, F), (M, W, A), (M, W)
        if features.shape[0] == 0:
            zero = features.sum() * 0.0  # still part of the graph, so DDP sees every parameter used
            return {"loss": zero, "primary_code_loss": zero, "secondary_code_loss": zero, "offset_l1": zero}

        gt_codes = self.tokenizer.encode_codes(chunks)  # (M, Nq), no grad
        code_head = self.heads.code_head
        logits = code_head(features, primary=gt_codes[:, 0])  # (M, Nq, C)
        code_losses = [focal_loss(logits[:, i], gt_codes[:, i], heads.focal_gamma).mean()
                       for i in range(logits.shape[1])]
        primary_loss = code_losses[0]
        secondary_loss = sum(code_losses[1:], primary_loss.new_zeros(()))

        with torch.no_grad():
            sampled = code_head.sample(features, heads.temperature, argmax=False, generator=generator)  # (M, Nq)
            decoded = self.tokenizer.decode_codes(sampled)  # (M, W, A)
        offsets = OffsetHead.select(self.heads.offset_head(features), sampled).view(-1, W, A)  # (M, W, A)
        error = (chunks - (decoded + offsets)).abs()  # (M, W, A)
        mask = real_step[:, :, None].to(error.dtype)  # (M, W, 1)
        offset_l1 = (error * mask).sum() / (mask.sum() * A)

        loss = (heads.primary_code_weight * primary_loss + heads.secondary_code_weight * secondary_loss
                + heads.offset_weight * offset_l1)
        return {"loss": loss, "primary_code_loss": primary_loss, "secondary_code_loss": secondary_loss,
                "offset_l1": offset_l1}

    def _sample_chunks(self, features: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """features (N, F) -> chunks (N, W, A): decoder(sum of sampled code vectors) + summed offsets."""
        heads, spec = self.config.heads, self.config.spec
        codes = self.heads.code_head.sample(features, heads.temperature, heads.argmax, generator)  # (N, Nq)
        decoded = self.tokenizer.decode_codes(codes)  # (N, W, A)
        offsets = OffsetHead.select(self.heads.offset_head(features), codes)  # (N, W*A)
        return decoded + offsets.view(-1, spec.chunk_size, spec.action_dim)  # (N, W, A)

    @torch.no_grad()
    def predict_chunks(self, tokens: torch.Tensor, generator: torch.Generator | None = None,
                       goal: torch.Tensor | None = None) -> torch.Tensor:
        """tokens (B, T, Dt) -> one normalized chunk per position (B, T, W, A). Codes are sampled at
        `heads.temperature` (official τ = 1), or the most likely ones with `heads.argmax`."""
        B, T, _ = tokens.shape
        chunks = self._sample_chunks(self._features(tokens, goal), generator)  # (B*T, W, A)
        return chunks.view(B, T, *chunks.shape[1:])  # (B, T, W, A)

    @torch.no_grad()
    def predict_chunk(self, tokens: torch.Tensor, generator: torch.Generator | None = None,
                      goal: torch.Tensor | None = None) -> torch.Tensor:
        """tokens (B, T, Dt) -> the chunk of the last position (B, W, A), the one executed (docs/vqbet.md §5).
        Only the last position goes through the heads (same result as predict_chunks(...)[:, -1] for argmax)."""
        features = self.prior(tokens, goal)[:, -1]  # (B, F)
        return self._sample_chunks(features, generator)  # (B, W, A)
