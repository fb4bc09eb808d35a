"""Backbone feature maps of every frame, for stage 2 with a frozen backbone (`vision.freeze_backbone`).

A frozen backbone gives every frame the same maps at every step, so running it inside the training loop only
repeats work: for a ResNet-18 it is nearly all of a step's cost. The maps of the centre crop (inference's
preprocessing) are computed once, kept as float16, and the prior's training reads them in place of the images
(`constants.backbone_maps_key`). The cost: no crop augmentation while the backbone is frozen.

On disk the maps are keyed by a hash of the frames and of the backbone's weights and preprocessing, so a rerun
on the same data with the same encoder reuses them, and any change computes them anew.
"""
from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

import numpy as np
import torch

from vqbet_ros import constants
from vqbet_ros.config_io import to_dict
from vqbet_ros.model.encoders import RgbEncoder

log = logging.getLogger(__name__)

BATCH = 256


def cache_key(frames: np.ndarray, encoder: RgbEncoder) -> str:
    """Hash of the frames, the backbone weights and the preprocessing settings."""
    h = hashlib.sha256()
    h.update(repr((frames.shape, str(frames.dtype))).encode())
    h.update(np.ascontiguousarray(frames).data)
    for name, tensor in sorted(encoder.backbone.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    settings = to_dict(encoder.config)
    h.update(repr({k: settings[k] for k in ("backbone", "group_norm", "resize_shape", "crop_shape",
                                            "imagenet_norm")}).encode())
    return h.hexdigest()[:32]


@torch.no_grad()
def compute_maps(frames: np.ndarray, encoder: RgbEncoder, device: torch.device) -> np.ndarray:
    """uint8 frames (N, 3, H, W) -> float16 maps (N, C, h, w) of the centre crop."""
    was_training = encoder.training
    encoder.eval()
    try:
        parts = [encoder.trunk(torch.from_numpy(frames[i:i + BATCH]).to(device)).to(torch.float16).cpu().numpy()
                 for i in range(0, len(frames), BATCH)]
    finally:
        encoder.train(was_training)
    return np.concatenate(parts)


def backbone_maps(frames: np.ndarray, encoder: RgbEncoder, device: torch.device, cache_dir: str) -> np.ndarray:
    """The maps of `frames`, read from `cache_dir` when computed before (empty `cache_dir` = no disk cache)."""
    if not cache_dir:
        return compute_maps(frames, encoder, device)
    path = Path(os.path.expanduser(cache_dir)) / f"{cache_key(frames, encoder)}.npy"
    if path.is_file():
        maps = np.load(path, mmap_mode=None)
        if len(maps) == len(frames):
            log.info("feature cache: %d frames' backbone maps from %s", len(maps), path)
            return maps
    maps = compute_maps(frames, encoder, device)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}.npy")
        np.save(tmp, maps)
        os.replace(tmp, path)  # a reader never sees a half-written file
        log.info("feature cache: %d frames' backbone maps (%.0f MB) saved to %s", len(maps), maps.nbytes / 2**20,
                 path)
    except OSError as err:  # a full or read-only disk costs only the reuse, not the run
        log.warning("feature cache: could not save to %s (%s); continuing without", path, err)
    return maps


def with_cached_maps(arrays: dict[str, np.ndarray], cameras: dict[str, RgbEncoder], device: torch.device,
                     cache_dir: str) -> dict[str, np.ndarray]:
    """`arrays` with each given camera's frames replaced by its backbone maps (`constants.backbone_maps_key`)."""
    out = dict(arrays)
    for key, encoder in cameras.items():
        out[constants.backbone_maps_key(key)] = backbone_maps(out.pop(key), encoder, device, cache_dir)
    return out
