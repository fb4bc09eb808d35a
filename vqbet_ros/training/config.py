"""One training run of `vqbet-train`: data, the optional encoder pretraining, the two stages, system settings.

The YAML file (`config/train_*.yaml`) holds a `TrainConfig`; `a.b=value` command-line overrides are applied
before validation, so every error names its key path. The `model:` block is the architecture (what the
checkpoint's `config.yaml` holds); everything else is how this run trains it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from vqbet_ros.config_io import ConfigError
from vqbet_ros.model.config import VQBeTConfig


def _check_number(name: str, value: float, low: float, high: float = math.inf, *, low_open: bool = False,
                  high_open: bool = True) -> None:
    """Refuse a non-finite number or one outside the interval, naming the field (NaN fails every comparison)."""
    above = value > low if low_open else value >= low
    below = value < high if high_open else value <= high
    if not (math.isfinite(value) and above and below):
        interval = f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
        raise ConfigError(f"`{name}`: must be a finite number in {interval}, got {value}")


@dataclass
class DataConfig:
    """Where the demonstrations come from and how they are split.

    Args:
        path: a LeRobot v3 dataset root, or a Diffusion-Policy PushT `.zarr` (read directly, no conversion).
        format: `auto` picks `zarr` for a path ending in .zarr, else `lerobot`.
        val_fraction: share of whole episodes held out for validation (official code 0.1, docs/vqbet.md §8).
        split_seed: seed of the episode split (official 42).
        max_episodes: use only the first N episodes (0 = all); for smoke tests.
    """

    path: str = ""
    format: Literal["auto", "lerobot", "zarr"] = "auto"
    val_fraction: float = 0.1
    split_seed: int = 42
    max_episodes: int = 0

    def __post_init__(self):
        if not self.path:
            raise ConfigError("`path`: required; a LeRobot v3 dataset directory or a PushT .zarr")
        _check_number("val_fraction", self.val_fraction, 0.0, 1.0)
        if self.max_episodes < 0:
            raise ConfigError(f"`max_episodes`: must be >= 0, got {self.max_episodes}")

    @property
    def resolved_format(self) -> str:
        if self.format != "auto":
            return self.format
        return "zarr" if self.path.rstrip("/").endswith(".zarr") else "lerobot"


@dataclass
class EncoderPretrainConfig:
    """Optional stage 0: supervised pretraining of the camera encoders on the demonstrations' own frames
    (docs/image-policies.md). Each camera's encoder, through a linear read-out, learns to predict `targets` of
    the same frame; the read-out is then dropped and stages 1-2 run as usual. With `vision.freeze_encoder` (or
    `freeze_backbone`), stage 2 keeps the pretrained encoder (or its backbone) fixed and computes its output once
    per frame (a cache), so the prior trains at nearly the speed of a state policy.

    Args:
        targets: dataset keys (float columns, e.g. `observation.environment_state`, `observation.state`) to
            predict from each frame; empty = no pretraining. They are used only here: the policy never sees them
            unless `model.spec` lists them too.
        steps: optimiser steps; with `time_limit_min` the stage stops at whichever comes first.
        time_limit_min: wall-clock budget in minutes (0 = none).
        batch_size: frames per step.
        lr: Adam learning rate, cosine-decayed to 10% over the stage.
        weight_decay: Adam weight decay.
        bf16_autocast: bfloat16 autocast of the encoders (on a CPU with AVX512-BF16 or AMX, and on CUDA, about
            twice as fast as float32 for a ResNet; the weights and the optimiser stay float32).
    """

    targets: list[str] = field(default_factory=list)
    steps: int = 10000
    time_limit_min: float = 0.0
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 1e-5
    bf16_autocast: bool = True

    def __post_init__(self):
        if self.steps < 1 or self.batch_size < 1:
            raise ConfigError(f"`steps` and `batch_size` must be >= 1, got {self.steps} and {self.batch_size}")
        _check_number("time_limit_min", self.time_limit_min, 0.0)
        _check_number("lr", self.lr, 0.0, low_open=True)
        _check_number("weight_decay", self.weight_decay, 0.0)
        if len(set(self.targets)) != len(self.targets):
            raise ConfigError(f"`targets`: a key is listed twice in {self.targets}")


@dataclass
class TokenizerTrainConfig:
    """Stage 1: the residual VQ-VAE on action chunks (docs/vqbet.md §2).

    Args:
        steps: optimiser steps (official PushT: 1001 epochs of batch 1024, about 25k steps; the codebooks
            settle far sooner, watch `distinct_pairs`).
        batch_size: chunks per step (official 1024).
        lr, weight_decay: Adam (official hard-codes 1e-3 and 1e-4).
    """

    steps: int = 3000
    batch_size: int = 1024
    lr: float = 1e-3
    weight_decay: float = 1e-4

    def __post_init__(self):
        if self.steps < 0 or self.batch_size < 1:
            raise ConfigError(f"`steps` must be >= 0 and `batch_size` >= 1, got {self.steps} and {self.batch_size}")
        _check_number("lr", self.lr, 0.0, low_open=True)
        _check_number("weight_decay", self.weight_decay, 0.0)


@dataclass
class PriorTrainConfig:
    """Stage 2: observation encoder, GPT and heads on a frozen tokenizer (docs/vqbet.md §3, §4, §8).

    Args:
        steps: optimiser steps; with `time_limit_min` the run stops at whichever comes first.
        time_limit_min: wall-clock budget of stage 2 in minutes (0 = none). When set, schedule progress is
            the larger of step / steps and elapsed / limit, so the LR decay and the freeze land in time on a
            machine of any speed (the run is then not bit-reproducible).
        batch_size: training windows (h-step histories) per step, across all processes.
        sequence_length: frames per sample. 0 = one h-window per sample (each frame encoded h times). L > h:
            h - 1 context frames + L - h + 1 targets; each frame is encoded once and the tokens are cut into
            the h-windows ending at every target, which is exactly equivalent to sampling those windows
            with `loss_positions: last` (with `all`, positions in the first h - 1 context frames get no loss).
        loss_positions: `all` = every position of each window, histories 1..h (official, BeT-style seq2seq);
            `last` = Deviation: only the last position, the one executed at inference, about 2.5x cheaper
            per window because the heads then run once per window.
        optimizer: `official` two AdamW (GPT + code head + encoder | offset head) with the GPT and code head
            frozen after `freeze_fraction`; `lerobot` one Adam with betas (0.95, 0.999).
        lr: learning rate (official 5.5e-5; LeRobot 1e-4).
        weight_decay: on Linear/conv weights of the GPT, encoder and offset head (official 2e-4).
        other_weight_decay: AdamW default 0.01 that the official code leaves on the code head and the
            observation encoder (ResNet header) (docs/vqbet.md §10.4).
        betas: Adam betas (official (0.9, 0.999); LeRobot (0.95, 0.999)).
        warmup_steps: linear warm-up (official 0; LeRobot 500).
        schedule: `constant` (official) or `cosine` decay to `min_lr_ratio` of lr (LeRobot).
        min_lr_ratio: floor of the cosine as a fraction of lr.
        freeze_fraction: progress after which only the offset head trains (official 0.5; 1.0 = never).
        grad_clip: max grad norm (0 = off; official none, LeRobot 10).
        dropout_in_training: official trains in eval mode, so dropout never acts (docs/vqbet.md §10.2); true = use it.
        ema_decay: exponential moving average of the weights (`training/weight_average.py`; 0 = off, e.g.
            0.999). Checkpoints and rollout evaluations then hold the average. Deviation: the official code
            keeps no average.
        feature_cache_dir: with `vision.freeze_encoder` or `freeze_backbone`, where the frozen part's outputs for
            every frame are kept between runs, keyed by the frames and the frozen weights
            (`training/feature_cache.py`); empty = compute them at every run. They are of the centre crop: no crop
            augmentation then.
    """

    steps: int = 20000
    time_limit_min: float = 0.0
    batch_size: int = 512
    sequence_length: int = 0
    loss_positions: Literal["all", "last"] = "all"
    optimizer: Literal["official", "lerobot"] = "official"
    lr: float = 5.5e-5
    weight_decay: float = 2e-4
    other_weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.999)
    warmup_steps: int = 0
    schedule: Literal["constant", "cosine"] = "constant"
    min_lr_ratio: float = 0.0
    freeze_fraction: float = 0.5
    grad_clip: float = 0.0
    dropout_in_training: bool = False
    ema_decay: float = 0.0
    feature_cache_dir: str = "~/.cache/vqbet_ros/features"

    def __post_init__(self):
        if self.steps < 0 or self.batch_size < 1:
            raise ConfigError(f"`steps` must be >= 0 and `batch_size` >= 1, got {self.steps} and {self.batch_size}")
        _check_number("time_limit_min", self.time_limit_min, 0.0)
        if self.sequence_length < 0:
            raise ConfigError(f"`sequence_length`: must be 0 (windows) or > n_obs_steps, got {self.sequence_length}")
        _check_number("lr", self.lr, 0.0, low_open=True)
        for name in ("weight_decay", "other_weight_decay", "grad_clip"):
            _check_number(name, getattr(self, name), 0.0)
        for i, beta in enumerate(self.betas):
            _check_number(f"betas[{i}]", beta, 0.0, 1.0)
        _check_number("freeze_fraction", self.freeze_fraction, 0.0, 1.0, low_open=True, high_open=False)
        _check_number("min_lr_ratio", self.min_lr_ratio, 0.0, 1.0, high_open=False)
        if self.warmup_steps < 0:
            raise ConfigError(f"`warmup_steps`: must be >= 0, got {self.warmup_steps}")
        _check_number("ema_decay", self.ema_decay, 0.0, 1.0)


@dataclass
class RolloutEvalConfig:
    """Closed-loop evaluation in the PushT simulator during stage 2, so that progress shows in task terms
    (PushT checkpoints: joints `agent_x`, `agent_y`). Logged as `rollout_*` scalars (TensorBoard,
    metrics.jsonl) and drawn in `coverage_vs_time.png`; each evaluated checkpoint is kept under
    `<output_dir>/evaluated/`.

    Args:
        every_min: stage-2 wall-clock minutes between evaluations (0 = off). They count in `time_limit_min`.
        episodes: episodes per evaluation.
        start_seed: seed of the first episode. Keep these validation seeds away from the test seeds
            (100000-100099) that the final figures are measured on.
        protocol: `official` (the paper's) or `gym` (see `vqbet-eval --help`).
    """

    every_min: float = 0.0
    episodes: int = 10
    start_seed: int = 10000
    protocol: Literal["official", "gym"] = "official"

    def __post_init__(self):
        _check_number("every_min", self.every_min, 0.0)
        if self.episodes < 1:
            raise ConfigError(f"`episodes`: must be >= 1, got {self.episodes}")


@dataclass
class TrainConfig:
    """A whole `vqbet-train` run.

    Args:
        model: architecture and feature spec (the checkpoint's config.yaml).
        data: dataset and split.
        encoder_pretrain: optional stage 0, pretraining of the camera encoders.
        stage1, stage2: the two training stages.
        rollout: closed-loop evaluation in the PushT simulator during stage 2.
        output_dir: run directory: checkpoints/, final/, tensorboard/, loss_curve.png, metrics.jsonl.
        seed: seeds torch, numpy and the batch order.
        device: `auto` (CUDA if available), `cpu`, `cuda` or `cuda:N`.
        amp: bfloat16 autocast on CUDA (ignored on CPU).
        num_threads: torch CPU threads per process (0 = torch's default). On a busy 2-core machine 1 is faster.
        log_every: steps between progress lines and TensorBoard scalars.
        val_every: stage-2 steps between validation losses (0 = off).
        checkpoint_every: steps between resumable checkpoints (0 = only at stage ends).
    """

    model: VQBeTConfig
    data: DataConfig
    encoder_pretrain: EncoderPretrainConfig = field(default_factory=EncoderPretrainConfig)
    stage1: TokenizerTrainConfig = field(default_factory=TokenizerTrainConfig)
    stage2: PriorTrainConfig = field(default_factory=PriorTrainConfig)
    rollout: RolloutEvalConfig = field(default_factory=RolloutEvalConfig)
    output_dir: str = "runs/vqbet"
    seed: int = 0
    device: str = "auto"
    amp: bool = True
    num_threads: int = 0
    log_every: int = 50
    val_every: int = 500
    checkpoint_every: int = 1000

    def __post_init__(self):
        n_obs = self.model.spec.n_obs_steps
        if 0 < self.stage2.sequence_length <= n_obs:
            raise ConfigError(f"`stage2.sequence_length` ({self.stage2.sequence_length}) must be 0 (windows) or "
                              f"larger than `model.spec.n_obs_steps` ({n_obs})")
        if not (self.device in ("auto", "cpu", "cuda") or self.device.startswith("cuda:")):
            raise ConfigError(f"`device`: expected auto, cpu, cuda or cuda:N, got {self.device!r}")
        if self.num_threads < 0:
            raise ConfigError(f"`num_threads`: must be >= 0, got {self.num_threads}")
        for name in ("log_every", "val_every", "checkpoint_every"):
            if getattr(self, name) < 0:
                raise ConfigError(f"`{name}`: must be >= 0, got {getattr(self, name)}")
        if self.log_every == 0:
            raise ConfigError("`log_every`: must be >= 1")
        if self.encoder_pretrain.targets and not self.model.spec.cameras:
            raise ConfigError("`encoder_pretrain.targets`: pretraining trains camera encoders, but "
                              "`model.spec.cameras` is empty; remove encoder_pretrain or add a camera")
