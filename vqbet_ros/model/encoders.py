"""Observation encoders: one ResNet per camera plus an MLP over joint state and low-dim extras (docs/vqbet.md §6).

`ObservationEncoder` turns one time step's observations (any number of cameras, optional joint state,
optional low-dim vectors) into one token. Its parts are public (`encode_camera`, `encode_vector`, `assemble`):
the runtime encodes each camera frame once, caches its features and assembles the token itself.

Dimension letters: N frames (any leading dims flattened), H, W image size, K keypoints, S state dim,
Dc per-camera feature size (`vision.feature_dim`), Dt token size.
"""
from __future__ import annotations

import logging
import os

import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision

from vqbet_ros import constants
from vqbet_ros.model.config import FeatureSpec, VisionConfig

log = logging.getLogger(__name__)

_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)  # the correct value; the official code has a 0.255 typo (docs/vqbet.md §10.13)
_WEIGHTS = {
    "resnet18": "ResNet18_Weights",
    "resnet34": "ResNet34_Weights",
    "resnet50": "ResNet50_Weights",
}


def pretrained_weights(backbone: str):
    """ImageNet weights enum for `backbone`, refusing fast when they are not in the torch hub cache.

    Never downloads: a robot or CI machine without network would hang on the download otherwise."""
    weights = getattr(torchvision.models, _WEIGHTS[backbone]).IMAGENET1K_V1
    path = os.path.join(torch.hub.get_dir(), "checkpoints", os.path.basename(weights.url))
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"`vision.pretrained: true` needs the ImageNet weights of `{backbone}` at `{path}`, which is missing. "
            f"On a machine with network run: python -c \"import torchvision; "
            f"torchvision.models.{backbone}(weights='IMAGENET1K_V1')\" and copy the file to that path "
            f"(or point TORCH_HOME at a directory holding checkpoints/{os.path.basename(path)}), "
            f"or set `vision.pretrained: false`."
        )
    return weights


class SpatialSoftmax(nn.Module):
    """Feature map (N, Cin, H, W) -> expected image coordinates of K keypoints in [-1, 1], (N, 2K)
    (LeRobot's VQ-BeT vision encoder, after Finn et al. 2016; docs/vqbet.md §6)."""

    def __init__(self, in_channels: int, height: int, width: int, num_keypoints: int):
        super().__init__()
        self.keypoints = nn.Conv2d(in_channels, num_keypoints, kernel_size=1)
        ys, xs = torch.meshgrid(torch.linspace(-1, 1, height), torch.linspace(-1, 1, width), indexing="ij")
        self.register_buffer("grid", torch.stack([xs.reshape(-1), ys.reshape(-1)], dim=1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.keypoints(x)  # (N, K, H, W)
        n, k = x.shape[:2]
        attention = torch.softmax(x.reshape(n, k, -1), dim=-1)  # (N, K, H*W)
        return (attention @ self.grid).reshape(n, 2 * k)  # (N, K, 2) -> (N, 2K)


class RgbEncoder(nn.Module):
    """uint8 images (N, 3, H, W) -> features (N, Dc): [0, 1] pixels, optional resize, random (train) or
    centre (eval) crop, optional ImageNet normalisation, ResNet trunk, pooling, projection."""

    def __init__(self, config: VisionConfig, image_shape: list[int], load_pretrained: bool = True):
        super().__init__()
        self.config = config
        weights = pretrained_weights(config.backbone) if config.pretrained and load_pretrained else None
        # LeRobot's scratch recipe: GroupNorm with C/16 groups instead of BatchNorm (docs/vqbet.md §6).
        norm = (lambda c: nn.GroupNorm(c // 16, c)) if config.group_norm else None
        resnet = getattr(torchvision.models, config.backbone)(weights=weights, norm_layer=norm)
        # Stem (conv, norm, relu, max-pool) and the first `backbone_stages` residual stages; no avgpool or fc.
        self.backbone = nn.Sequential(*list(resnet.children())[:4 + config.backbone_stages])
        if config.freeze_backbone:
            self.backbone.requires_grad_(False)
        self.input_hw = tuple(config.crop_shape or config.resize_shape or image_shape[1:])
        with torch.no_grad():
            was_training = self.backbone.training
            channels, h, w = self.backbone.eval()(torch.zeros(1, 3, *self.input_hw)).shape[1:]
            self.backbone.train(was_training)
        if config.pool == "spatial_softmax":
            self.pool = SpatialSoftmax(channels, h, w, config.num_keypoints)
            pooled = 2 * config.num_keypoints
        else:
            self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())  # official global average pool
            pooled = channels
        self.out = nn.Linear(pooled, config.feature_dim)
        if config.freeze_encoder:
            self.requires_grad_(False)
        self.register_buffer("mean", torch.tensor(_IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(_IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def train(self, mode: bool = True) -> RgbEncoder:
        super().train(mode)
        if self.config.freeze_backbone:
            self.backbone.eval()  # a frozen backbone keeps its BatchNorm statistics (official: frozen, eval)
        return self

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        x = images.float() / 255.0  # (N, 3, H, W) in [0, 1]
        if self.config.resize_shape is not None:
            x = F.interpolate(x, size=tuple(self.config.resize_shape), mode="bilinear", align_corners=False)
        if self.config.crop_shape is not None:
            x = self._crop(x, *self.config.crop_shape)
        if self.config.imagenet_norm:
            x = (x - self.mean) / self.std
        return x

    def _crop(self, x: torch.Tensor, ch: int, cw: int) -> torch.Tensor:
        n, _, h, w = x.shape
        if not self.training:
            top, left = (h - ch) // 2, (w - cw) // 2
            return x[:, :, top:top + ch, left:left + cw]
        # A different random crop per image (LeRobot crops a whole batch at one offset).
        top = torch.randint(0, h - ch + 1, (n,), device=x.device)
        left = torch.randint(0, w - cw + 1, (n,), device=x.device)
        rows = (top[:, None] + torch.arange(ch, device=x.device))[:, :, None]  # (N, ch, 1)
        cols = (left[:, None] + torch.arange(cw, device=x.device))[:, None, :]  # (N, 1, cw)
        batch = torch.arange(n, device=x.device)[:, None, None]  # (N, 1, 1)
        return x.permute(0, 2, 3, 1)[batch, rows, cols].permute(0, 3, 1, 2)  # (N, ch, cw, 3) -> (N, 3, ch, cw)

    def trunk(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 images (N, 3, H, W) -> backbone feature maps (N, C, h, w)."""
        return self.backbone(self.preprocess(images))

    def head(self, maps: torch.Tensor) -> torch.Tensor:
        """Backbone feature maps (N, C, h, w) -> features (N, Dc)."""
        features = self.out(self.pool(maps))  # (N, Dc)
        # LeRobot follows the keypoint projection with a ReLU; the official pooled header is a plain Linear.
        return torch.relu(features) if self.config.pool == "spatial_softmax" else features

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.trunk(images))

    # A frozen part gives every frame the same output at every training step, so training computes it once per
    # frame (`training/feature_cache.py`) and runs only the rest: the head after a frozen backbone, nothing after
    # a frozen encoder.
    @property
    def frozen(self) -> bool:
        return self.config.freeze_backbone or self.config.freeze_encoder

    def frozen_part(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 images (N, 3, H, W) -> the output of the frozen part: features (N, Dc) of a frozen encoder, else
        backbone maps (N, C, h, w)."""
        return self(images) if self.config.freeze_encoder else self.trunk(images)

    def after_frozen(self, x: torch.Tensor) -> torch.Tensor:
        """`frozen_part`'s output -> features (N, Dc)."""
        return x if self.config.freeze_encoder else self.head(x)


class ObservationEncoder(nn.Module):
    """One token per time step: [camera features in spec order..., MLP(state ++ low-dim extras)] (..., Dt).

    Inputs are dataset keys; state and low-dim values are already min-max normalized, images are uint8. In place
    of a camera's images, `constants.frozen_output_key(key)` may hold what its frozen part gives for them
    (`RgbEncoder.frozen_part`).
    """

    def __init__(self, spec: FeatureSpec, vision: VisionConfig, state_hidden_dim: int,
                 load_pretrained: bool = True):
        super().__init__()
        self.spec = spec
        self.camera_keys = list(spec.image_keys.values())
        self.cameras = nn.ModuleList(
            [RgbEncoder(vision, spec.cameras[cam], load_pretrained) for cam in spec.cameras]
        )
        self.vector_keys: dict[str, int] = {}
        if spec.joint_names:
            self.vector_keys[constants.STATE] = spec.state_dim
        for name, size in spec.low_dim.items():
            self.vector_keys[constants.low_dim_key(name)] = size
        self.vector_mlp = None
        if self.vector_keys:
            in_dim = sum(self.vector_keys.values())
            self.vector_mlp = nn.Sequential(nn.Linear(in_dim, state_hidden_dim), nn.ReLU(),
                                            nn.Linear(state_hidden_dim, state_hidden_dim))
        self.token_dim = len(self.cameras) * vision.feature_dim + (state_hidden_dim if self.vector_keys else 0)

    def _get(self, obs: dict[str, torch.Tensor], key: str, tail: tuple[int, ...]) -> torch.Tensor:
        if key not in obs:
            raise KeyError(f"observation `{key}` is missing; the checkpoint's spec expects {self.expected_keys()}")
        x = obs[key]
        if tuple(x.shape[-len(tail):]) != tail:
            raise ValueError(f"observation `{key}`: expected shape (..., {', '.join(map(str, tail))}), "
                             f"got {tuple(x.shape)}")
        return x

    def expected_keys(self) -> list[str]:
        return self.camera_keys + list(self.vector_keys)

    @property
    def vector_dim(self) -> int:
        """Size of the vector part's input: the `vector_keys` sizes summed (0 without joint state or low-dim)."""
        return sum(self.vector_keys.values())

    # ---- the parts of a token ----------------------------------------------------------------------------
    def encode_camera(self, index: int, images: torch.Tensor) -> torch.Tensor:
        """uint8 images (N, 3, H, W) of the `index`-th camera (spec order) -> features (N, Dc)."""
        return self.cameras[index](images)

    def encode_vector(self, vector: torch.Tensor) -> torch.Tensor:
        """Normalized values (N, vector_dim), those of `vector_keys` concatenated in its order
        -> features (N, state_hidden_dim)."""
        return self.vector_mlp(vector)

    @staticmethod
    def assemble(camera_features: list[torch.Tensor], vector_features: torch.Tensor | None) -> torch.Tensor:
        """Features of every camera in spec order, (N, Dc) each, and of the vector part (or None)
        -> tokens (N, Dt)."""
        parts = camera_features if vector_features is None else [*camera_features, vector_features]
        return torch.cat(parts, dim=1)  # (N, Dt)

    def forward(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        features, lead = [], None
        for index, (key, encoder, cam) in enumerate(zip(self.camera_keys, self.cameras, self.spec.cameras)):
            precomputed = constants.frozen_output_key(key)
            if precomputed in obs:  # the frozen part's output, computed beforehand (training)
                x = obs[precomputed]
                tail = x.shape[-1:] if encoder.config.freeze_encoder else x.shape[-3:]
                lead = x.shape[:-len(tail)]
                features.append(encoder.after_frozen(x.reshape(-1, *tail).float()))  # (N, Dc)
                continue
            images = self._get(obs, key, tuple(self.spec.cameras[cam]))
            if images.dtype != torch.uint8:
                raise TypeError(f"observation `{key}`: expected uint8 images, got {images.dtype}")
            lead = images.shape[:-3]
            features.append(self.encode_camera(index, images.reshape(-1, *images.shape[-3:])))  # (N, Dc)
        vector_features = None
        if self.vector_keys:
            vectors = []
            for key, size in self.vector_keys.items():
                x = self._get(obs, key, (size,))
                lead = x.shape[:-1] if lead is None else lead
                vectors.append(x.reshape(-1, size).float())  # (N, n)
            vector_features = self.encode_vector(torch.cat(vectors, dim=1))  # (N, state_hidden_dim)
        return self.assemble(features, vector_features).reshape(*lead, self.token_dim)  # (..., Dt)
