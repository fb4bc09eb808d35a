"""VQ-BeT configuration: the observation/action spec and every architecture hyperparameter.

This is what a checkpoint's `config.yaml` holds. Defaults are the paper's / official code's values
(docs/vqbet.md §2-§4, §11); each deviation is a named option.

Dimension letters used across `vqbet_ros.model`: B batch, T observation history (n_obs_steps),
W chunk length, A action dim, S state dim, Nq residual-VQ layers, C codebook size, D width.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from vqbet_ros import constants
from vqbet_ros.config_io import ConfigError


def _check_at_least(config, minimum: int, *names: str) -> None:
    """Integer fields that must be >= `minimum`."""
    for name in names:
        value = getattr(config, name)
        if value < minimum:
            raise ConfigError(f"`{name}`: must be >= {minimum}, got {value}")


def _check_finite(config, *names: str, low: float = 0.0, low_open: bool = False) -> None:
    """Float fields that must be finite and >= `low` (> `low` with `low_open`)."""
    for name in names:
        value = getattr(config, name)
        if not math.isfinite(value) or value < low or (low_open and value == low):
            raise ConfigError(f"`{name}`: must be a finite number {'>' if low_open else '>='} {low:g}, got {value}")


@dataclass
class FeatureSpec:
    """What the policy observes and commands: the contract between a checkpoint and the robot.

    Args:
        cameras: camera name -> image shape [3, H, W] the model sees (after the node's resize).
        joint_names: joints of `observation.state`, in order (the node maps /joint_states by name).
        action_names: commanded joints, in order (usually the same as `joint_names`).
        low_dim: extra low-dimensional observations, name -> size (dataset key `observation.<name>`),
            e.g. an object pose from perception or PushT's keypoints `environment_state: 18`.
        fps: rate of the observation history and of the action chunk steps (Hz), the dataset's fps.
        n_obs_steps: observation history length h (official PushT 5).
        chunk_size: action chunk length W (official PushT 5).
    """

    cameras: dict[str, list[int]] = field(default_factory=dict)
    joint_names: list[str] = field(default_factory=list)
    action_names: list[str] = field(default_factory=list)
    low_dim: dict[str, int] = field(default_factory=dict)
    fps: float = 10.0
    n_obs_steps: int = 5
    chunk_size: int = 5

    def __post_init__(self):
        for name, shape in self.cameras.items():
            if len(shape) != 3 or shape[0] != 3 or min(shape) <= 0:
                raise ConfigError(f"`cameras.{name}`: expected [3, H, W] with H, W > 0, got {shape}")
        if not self.action_names:
            raise ConfigError("`action_names`: at least one commanded joint is required")
        for key, names in (("joint_names", self.joint_names), ("action_names", self.action_names)):
            if len(set(names)) != len(names):
                raise ConfigError(f"`{key}`: names must be unique, got {names}")
        for name, size in self.low_dim.items():
            if size <= 0:
                raise ConfigError(f"`low_dim.{name}`: size must be positive, got {size}")
        if not self.cameras and not self.joint_names and not self.low_dim:
            raise ConfigError("the policy needs at least one observation: a camera, joints or a low_dim input")
        _check_finite(self, "fps", low_open=True)
        if self.fps > 1000:
            raise ConfigError(f"`fps`: at most 1000 Hz (the control loop ticks at this rate), got {self.fps}")
        _check_at_least(self, 1, "n_obs_steps", "chunk_size")

    @property
    def state_dim(self) -> int:
        return len(self.joint_names)

    @property
    def action_dim(self) -> int:
        return len(self.action_names)

    @property
    def dt(self) -> float:
        return 1.0 / self.fps

    @property
    def image_keys(self) -> dict[str, str]:
        """camera name -> dataset key."""
        return {cam: constants.image_key(cam) for cam in self.cameras}

    @property
    def low_dim_keys(self) -> dict[str, str]:
        """low-dim name -> dataset key."""
        return {name: constants.low_dim_key(name) for name in self.low_dim}


@dataclass
class TokenizerConfig:
    """Stage 1, the residual VQ-VAE over flattened action chunks (docs/vqbet.md §2).

    Args:
        hidden_dim: width of the encoder/decoder MLP hidden layers (official 128).
        n_hidden_layers: hidden layers in each MLP (official 2: in -> 128 -> 128 -> D).
        latent_dim: D, the codebook vector size (official 512, LeRobot 256).
        n_vq_layers: Nq residual layers; layer 1 is the primary code, layer 2 the secondary (official 2).
        codebook_size: C codes per layer (official 16 for PushT).
        ema_decay: codebook EMA decay (official 0.8); codebooks get no gradient.
        ema_eps: Laplace smoothing of the EMA cluster sizes (official 1e-5).
        commitment_weight: weight of the commitment loss summed over layers (official 5).
        recon_weight: weight of the L1 reconstruction loss (official `encoder_loss_multiplier`, 1).
        kmeans_init: Deviation (off by default): initialise codebooks by k-means on the first batch.
        dead_code_threshold: Deviation (0 = off, the official value): re-seed codes whose EMA cluster
            size falls below this from random batch residuals.
    """

    hidden_dim: int = 128
    n_hidden_layers: int = 2
    latent_dim: int = 512
    n_vq_layers: int = 2
    codebook_size: int = 16
    ema_decay: float = 0.8
    ema_eps: float = 1e-5
    commitment_weight: float = 5.0
    recon_weight: float = 1.0
    kmeans_init: bool = False
    dead_code_threshold: float = 0.0

    def __post_init__(self):
        if not 0.0 < self.ema_decay < 1.0:
            raise ConfigError(f"`ema_decay`: must be in (0, 1), got {self.ema_decay}")
        _check_at_least(self, 1, "hidden_dim", "n_hidden_layers", "latent_dim", "n_vq_layers", "codebook_size")
        _check_finite(self, "ema_eps", low_open=True)
        _check_finite(self, "commitment_weight", "recon_weight", "dead_code_threshold")


@dataclass
class PriorConfig:
    """Stage 2, the nanoGPT-style causal transformer (docs/vqbet.md §3).

    Args:
        n_layer, n_head, n_embd: GPT size (official 6 / 6 / 120).
        output_dim: width of the GPT output fed to the heads (official 256, docs/vqbet.md §10.5).
        dropout: embedding/attention/residual dropout (official config 0.1; note docs/vqbet.md §10.2).
        block_size: maximum tokens (history + goal tokens) (official 30).
        n_goal_tokens: goal tokens prepended for goal-conditioned generation (0 = unconditional).
        goal_dim: size of a goal vector (needed when `n_goal_tokens` > 0).
        tanh_gelu: official nanoGPT uses the tanh-approximate GELU; LeRobot the exact one.
    """

    n_layer: int = 6
    n_head: int = 6
    n_embd: int = 120
    output_dim: int = 256
    dropout: float = 0.1
    block_size: int = 30
    n_goal_tokens: int = 0
    goal_dim: int = 0
    tanh_gelu: bool = True

    def __post_init__(self):
        _check_at_least(self, 1, "n_layer", "n_head", "n_embd", "output_dim", "block_size")
        _check_at_least(self, 0, "n_goal_tokens", "goal_dim")
        if self.n_embd % self.n_head != 0:
            raise ConfigError(f"`n_embd` ({self.n_embd}) must be divisible by `n_head` ({self.n_head})")
        if not 0.0 <= self.dropout < 1.0:  # NaN fails too
            raise ConfigError(f"`dropout`: must be in [0, 1), got {self.dropout}")
        if self.n_goal_tokens > 0 and self.goal_dim <= 0:
            raise ConfigError("`goal_dim` must be > 0 when `n_goal_tokens` > 0")


@dataclass
class HeadConfig:
    """Code and offset heads and their losses (docs/vqbet.md §4).

    Args:
        hidden_dim: hidden width of the 2-hidden-layer MLP heads (official 1024).
        sequential_codes: predict the secondary code conditioned on the primary (official option, off).
        focal_gamma: focal-loss gamma (official 2).
        primary_code_weight: primary-code loss weight (official, hard-coded 5, docs/vqbet.md §10.6).
        secondary_code_weight: secondary-code loss weight (official `secondary_code_multiplier` 0.5).
        offset_weight: L1 offset loss weight; official README suggests ~100 for actions in [-1, 1]
            (docs/vqbet.md §10.7).
        temperature: code sampling temperature (official 1.0; LeRobot 0.1).
        argmax: Deviation (off by default): take the most likely codes instead of sampling, for robots
            that must be deterministic (docs/vqbet.md §10.14).
    """

    hidden_dim: int = 1024
    sequential_codes: bool = False
    focal_gamma: float = 2.0
    primary_code_weight: float = 5.0
    secondary_code_weight: float = 0.5
    offset_weight: float = 100.0
    temperature: float = 1.0
    argmax: bool = False

    def __post_init__(self):
        _check_at_least(self, 1, "hidden_dim")
        _check_finite(self, "temperature", low_open=True)
        _check_finite(self, "focal_gamma", "primary_code_weight", "secondary_code_weight", "offset_weight")


@dataclass
class VisionConfig:
    """One ResNet per camera (docs/vqbet.md §6-§7).

    Args:
        backbone: torchvision ResNet (official and LeRobot: resnet18).
        backbone_stages: how many of the ResNet's 4 residual stages to keep (4 = the whole trunk, as official
            and LeRobot). Fewer stages give a smaller, faster encoder with a finer feature map (stride 8 after
            2 stages: 12x12 at 96x96), which suits a spatial softmax; ResNet-18 with 2 stages has 0.7 M weights
            instead of 11 M.
        pretrained: load ImageNet weights (official: pretrained and frozen). Needs the weights in the torch
            hub cache or network access; offline this fails with a message, never a hang.
        freeze_backbone: keep the backbone weights fixed (official `finetune_resnet: false`).
        freeze_encoder: keep the whole camera encoder (backbone, pooling, projection) fixed, e.g. after encoder
            pretraining (`vqbet-train`'s `encoder_pretrain`); implies `freeze_backbone`.
        pool: `spatial_softmax` (LeRobot) or `avg` (official global-average pooling).
        num_keypoints: spatial-softmax keypoints (LeRobot 32).
        group_norm: replace BatchNorm with GroupNorm (LeRobot's scratch recipe; required when training
            from scratch with small batches).
        resize_shape: [H, W] to resize to before cropping (none = keep).
        crop_shape: [H, W] crop (random in training, centre at inference; none = no crop; LeRobot 84x84).
        feature_dim: per-camera feature size after the projection.
        imagenet_norm: normalise pixels with ImageNet mean/std (use with pretrained weights).
    """

    backbone: Literal["resnet18", "resnet34", "resnet50"] = "resnet18"
    backbone_stages: int = 4
    pretrained: bool = False
    freeze_backbone: bool = False
    freeze_encoder: bool = False
    pool: Literal["spatial_softmax", "avg"] = "spatial_softmax"
    num_keypoints: int = 32
    group_norm: bool = True
    resize_shape: list[int] | None = None
    crop_shape: list[int] | None = None
    feature_dim: int = 64
    imagenet_norm: bool = False

    def __post_init__(self):
        _check_at_least(self, 1, "num_keypoints", "feature_dim")
        if self.freeze_encoder and not self.freeze_backbone:
            raise ConfigError("`freeze_encoder: true` freezes the backbone too; set `freeze_backbone: true` as well")
        if not 1 <= self.backbone_stages <= 4:
            raise ConfigError(f"`backbone_stages`: a ResNet has 4 residual stages; keep 1 to 4, got {self.backbone_stages}")
        for name in ("resize_shape", "crop_shape"):
            shape = getattr(self, name)
            if shape is not None and (len(shape) != 2 or min(shape) <= 0):
                raise ConfigError(f"`{name}`: expected [H, W] with positive sizes, got {shape}")
        if self.pretrained and self.group_norm:
            raise ConfigError("`group_norm`: ImageNet weights were trained with BatchNorm; "
                              "set group_norm: false with pretrained: true")


@dataclass
class VQBeTConfig:
    """Everything needed to rebuild a VQ-BeT policy. Saved as a checkpoint's `config.yaml`."""

    spec: FeatureSpec
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    prior: PriorConfig = field(default_factory=PriorConfig)
    heads: HeadConfig = field(default_factory=HeadConfig)
    vision: VisionConfig = field(default_factory=VisionConfig)
    state_hidden_dim: int = 128  # hidden width of the state / low-dim MLP encoder

    def __post_init__(self):
        _check_at_least(self, 1, "state_hidden_dim")
        tokens = self.spec.n_obs_steps + self.prior.n_goal_tokens
        if tokens > self.prior.block_size:
            raise ConfigError(
                f"`prior.block_size` ({self.prior.block_size}) must hold n_obs_steps + n_goal_tokens = {tokens}"
            )
        crop = self.vision.crop_shape
        for cam, shape in self.spec.cameras.items():
            h, w = self.vision.resize_shape or shape[1:]
            if crop is not None and (crop[0] > h or crop[1] > w):
                raise ConfigError(f"`vision.crop_shape` {crop} is larger than camera `{cam}` image {[h, w]}")
