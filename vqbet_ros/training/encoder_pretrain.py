"""Stage 0 of `vqbet-train` (optional): pretrain the camera encoders on the demonstrations' own frames.

Training a ResNet end to end through the VQ-BeT loss needs far more steps than a CPU gives in an hour (docs/
image-policies.md). A direct regression is a much stronger signal per step: each camera's encoder, followed by a
linear read-out, learns to predict `encoder_pretrain.targets` (e.g. the object's pose recorded with the demos, or
the robot's joint state) from a single frame. Afterwards the read-out is dropped; the encoder keeps what it
learned about where things are, which is what the prior needs from an image.

Letters: B frames per batch, D summed target size, Dc per-camera feature size.
"""
from __future__ import annotations

import logging
import math
import time

import numpy as np
import torch
import torch.nn as nn

from vqbet_ros.data.stats import episode_rows
from vqbet_ros.model.policy import VQBeTPolicy
from vqbet_ros.training.config import EncoderPretrainConfig
from vqbet_ros.training.data import TrainingData
from vqbet_ros.training.monitor import Monitor

log = logging.getLogger(__name__)

VAL_FRAMES = 1024


class EncoderProbe(nn.Module):
    """Every camera's encoder with one linear read-out of all targets: images -> (B, D) per camera."""

    def __init__(self, policy: VQBeTPolicy, target_dim: int):
        super().__init__()
        self.cameras = policy.obs_encoder.cameras
        self.camera_keys = policy.obs_encoder.camera_keys
        feature_dim = policy.config.vision.feature_dim
        self.readouts = nn.ModuleList([nn.Linear(feature_dim, target_dim) for _ in self.cameras])

    def forward(self, images: dict[str, torch.Tensor]) -> list[torch.Tensor]:
        return [readout(encoder(images[key]))
                for key, encoder, readout in zip(self.camera_keys, self.cameras, self.readouts)]


def _loss(probe: EncoderProbe, images: dict[str, torch.Tensor], target: torch.Tensor, bf16: bool) -> torch.Tensor:
    """Mean squared error of every camera's prediction (targets are min-max normalized to [-1, 1])."""
    with torch.autocast(target.device.type, dtype=torch.bfloat16, enabled=bf16):
        predictions = probe(images)
    return sum(((p.float() - target) ** 2).mean() for p in predictions) / len(predictions)


def pretrain_encoders(policy: VQBeTPolicy, data: TrainingData, cfg: EncoderPretrainConfig, seed: int,
                      device: torch.device, monitor: Monitor, log_every: int) -> dict[str, float]:
    """Train the camera encoders of `policy` in place; returns the final train and validation losses.

    The encoders train even when `vision.freeze_backbone` or `freeze_encoder` is set: those freeze them for stage 2."""
    camera_keys = policy.obs_encoder.camera_keys
    targets = np.concatenate([data.targets[k] for k in cfg.targets], axis=1)  # (N, D)
    train_rows = episode_rows(data.episode_ranges, data.train_episodes)
    val_rows = episode_rows(data.episode_ranges, data.val_episodes)
    rng = np.random.default_rng([seed, 0])
    val_rows = rng.permutation(val_rows)[:VAL_FRAMES]
    probe = EncoderProbe(policy, targets.shape[1]).to(device)
    probe.requires_grad_(True)
    optimizer = torch.optim.Adam(probe.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    time_limit_s = cfg.time_limit_min * 60.0

    def batch(rows: np.ndarray):
        images = {k: torch.from_numpy(data.arrays[k][rows]).to(device) for k in camera_keys}
        return images, torch.from_numpy(targets[rows]).to(device)

    def validate() -> float:
        if len(val_rows) == 0:
            return math.nan
        probe.eval()
        with torch.no_grad():
            losses = [float(_loss(probe, *batch(val_rows[i:i + 256]), cfg.bf16_autocast)) * len(val_rows[i:i + 256])
                      for i in range(0, len(val_rows), 256)]
        probe.train()
        return sum(losses) / len(val_rows)

    probe.train()
    monitor.start_stage(0, cfg.steps, 0)
    t0, step, order, cursor = time.perf_counter(), 0, rng.permutation(train_rows), 0
    result = {}
    while step < cfg.steps:
        elapsed = time.perf_counter() - t0
        frac = max(step / cfg.steps, elapsed / time_limit_s if time_limit_s else 0.0)
        if frac >= 1.0:
            break
        if cursor + cfg.batch_size > len(order):
            order, cursor = rng.permutation(train_rows), 0
        rows = np.sort(order[cursor:cursor + cfg.batch_size])
        cursor += cfg.batch_size
        lr = cfg.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac)))  # cosine to 10%
        for group in optimizer.param_groups:
            group["lr"] = lr
        loss = _loss(probe, *batch(rows), cfg.bf16_autocast)
        if not torch.isfinite(loss):
            raise RuntimeError(f"encoder pretraining diverged at step {step} (loss {float(loss)}); lower "
                               "`encoder_pretrain.lr`")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        step += 1
        if step % log_every == 0:
            result["train_loss"] = float(loss.detach())
            monitor.log(0, step, {"loss": float(loss.detach()), "lr": lr, "progress": frac})
    monitor.end_stage()
    result["val_loss"] = validate()
    result["steps"] = step
    result["time_s"] = time.perf_counter() - t0
    monitor.log(0, step, {"val_loss": result["val_loss"]})
    log.info("encoder pretraining: %d steps in %.0f s, validation MSE %.3g (targets in [-1, 1])", step,
             result["time_s"], result["val_loss"])
    return result
