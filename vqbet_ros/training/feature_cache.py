"""What the frozen part of a camera encoder gives for every frame, for stage 2 with `vision.freeze_backbone`
(backbone feature maps) or `vision.freeze_encoder` (the camera features themselves).

A frozen part gives every frame the same output at every step, so running it inside the training loop only
repeats work: for a ResNet it is nearly all of a step's cost. Its output for the centre crop (inference's
preprocessing) is computed once, kept as float16, and the prior's training reads it in place of the images
(`constants.frozen_output_key`). The cost: no crop augmentation while the part is frozen.

On disk the outputs are keyed by a hash of the frames and of the frozen weights and settings, so a rerun on the
same data with the same encoder reuses them, and any change computes them anew.
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
    """Hash of the frames, the encoder's weights (all of them: only the frozen ones matter, and they are all
    frozen with `freeze_encoder`) and its settings."""
    h = hashlib.sha256()
    h.update(repr((frames.shape, str(frames.dtype))).encode())
    h.update(np.ascontiguousarray(frames).data)
    frozen = encoder if encoder.config.freeze_encoder else encoder.backbone
    for name, tensor in sorted(frozen.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    h.update(repr(sorted(to_dict(encoder.config).items())).encode())
    return h.hexdigest()[:32]


@torch.no_grad()
def compute_frozen_outputs(frames: np.ndarray, encoder: RgbEncoder, device: torch.device) -> np.ndarray:
    """uint8 frames (N, 3, H, W) -> float16 `encoder.frozen_part` outputs of the centre crop."""
    was_training = encoder.training
    encoder.eval()
    try:
        parts = [encoder.frozen_part(torch.from_numpy(frames[i:i + BATCH]).to(device)).to(torch.float16).cpu()
                 .numpy() for i in range(0, len(frames), BATCH)]
    finally:
        encoder.train(was_training)
    return np.concatenate(parts)


def frozen_outputs(frames: np.ndarray, encoder: RgbEncoder, device: torch.device, cache_dir: str) -> np.ndarray:
    """The frozen part's outputs for `frames`, read from `cache_dir` when computed before (empty = no disk
    cache)."""
    if not cache_dir:
        return compute_frozen_outputs(frames, encoder, device)
    path = Path(os.path.expanduser(cache_dir)) / f"{cache_key(frames, encoder)}.npy"
    if path.is_file():
        maps = np.load(path)
        if len(maps) == len(frames):
            log.info("feature cache: %d frames' frozen-encoder outputs from %s", len(maps), path)
            return maps
    maps = compute_frozen_outputs(frames, encoder, device)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}.npy")
        np.save(tmp, maps)
        os.replace(tmp, path)  # a reader never sees a half-written file
        log.info("feature cache: %d frames' frozen-encoder outputs (%.0f MB) saved to %s", len(maps),
                 maps.nbytes / 2**20, path)
    except OSError as err:  # a full or read-only disk costs only the reuse, not the run
        log.warning("feature cache: could not save to %s (%s); continuing without", path, err)
    return maps


def with_frozen_outputs(arrays: dict[str, np.ndarray], cameras: dict[str, RgbEncoder], device: torch.device,
                        cache_dir: str) -> dict[str, np.ndarray]:
    """`arrays` with each given camera's frames replaced by its frozen part's outputs
    (`constants.frozen_output_key`)."""
    out = dict(arrays)
    for key, encoder in cameras.items():
        out[constants.frozen_output_key(key)] = frozen_outputs(out.pop(key), encoder, device, cache_dir)
    return out
