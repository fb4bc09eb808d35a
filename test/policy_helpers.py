"""Tiny real VQ-BeT checkpoints for the runtime and policy-node tests (a few hundred kB, built in ~0.2 s)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from vqbet_ros import constants
from vqbet_ros.config_io import from_dict
from vqbet_ros.model.checkpoint import save_checkpoint
from vqbet_ros.model.config import VQBeTConfig
from vqbet_ros.model.policy import VQBeTPolicy

JOINTS = ["shoulder", "elbow"]


def tiny_config(cameras=("front",), image_hw=(32, 32), low_dim=None, fps=10.0, n_obs_steps=3, chunk_size=4,
                argmax=True, joints=JOINTS, feature_dim=16) -> VQBeTConfig:
    spec = {
        "cameras": {c: [3, *image_hw] for c in cameras},
        "joint_names": list(joints),
        "action_names": list(JOINTS),
        "low_dim": dict(low_dim or {}),
        "fps": fps,
        "n_obs_steps": n_obs_steps,
        "chunk_size": chunk_size,
    }
    return from_dict(VQBeTConfig, {
        "spec": spec,
        "tokenizer": {"hidden_dim": 16, "latent_dim": 8, "codebook_size": 4},
        "prior": {"n_layer": 1, "n_head": 2, "n_embd": 16, "output_dim": 16, "dropout": 0.0, "block_size": 8},
        "heads": {"hidden_dim": 16, "argmax": argmax},
        "vision": {"num_keypoints": 4, "feature_dim": feature_dim},
        "state_hidden_dim": 16,
    })


def tiny_stats(config: VQBeTConfig) -> dict:
    spec = config.spec
    stats = {constants.ACTION: {"min": np.full(spec.action_dim, -1.0), "max": np.full(spec.action_dim, 2.0)}}
    if spec.joint_names:
        stats[constants.STATE] = {"min": np.full(spec.state_dim, -1.0), "max": np.full(spec.state_dim, 2.0)}
    for name, size in spec.low_dim.items():
        stats[constants.low_dim_key(name)] = {"min": np.zeros(size), "max": np.full(size, 4.0)}
    return stats


def make_checkpoint(directory: Path, seed: int = 0, **kwargs) -> Path:
    """A randomly initialised (untrained) tiny policy saved as a checkpoint directory."""
    torch.manual_seed(seed)
    config = tiny_config(**kwargs)
    policy = VQBeTPolicy(config)
    policy.freeze_tokenizer()
    return save_checkpoint(directory, config, policy, tiny_stats(config))


def make_so101_checkpoint(directory: Path, chunk_size: int = 5) -> Path:
    """Random weights with the spec recorded SO-101 data gives (six joints, the block pose, 30 Hz), argmax
    codes; actions within 0.3 rad of the arm's rest pose, so it moves a little and safely."""
    from vqbet_ros.so101.robot import HOME_POSITION
    from vqbet_ros.so101.scene import JOINT_NAMES

    torch.manual_seed(0)
    spec = {"joint_names": list(JOINT_NAMES), "action_names": list(JOINT_NAMES), "low_dim": {"block_pose": 7},
            "fps": 30.0, "n_obs_steps": 2, "chunk_size": chunk_size}
    config = from_dict(VQBeTConfig, {
        "spec": spec,
        "tokenizer": {"hidden_dim": 16, "latent_dim": 16, "codebook_size": 4},
        "prior": {"n_layer": 1, "n_head": 1, "n_embd": 16, "output_dim": 16, "block_size": 8},
        "heads": {"hidden_dim": 32, "argmax": True},
    })
    stats = {key: {"min": HOME_POSITION - 0.3, "max": HOME_POSITION + 0.3} for key in (constants.STATE,
                                                                                     constants.ACTION)}
    stats[constants.low_dim_key("block_pose")] = {"min": np.array([0.15, -0.1, 0.0, -1, -1, -1, -1]),
                                                  "max": np.array([0.35, 0.1, 0.1, 1, 1, 1, 1])}
    return save_checkpoint(directory, config, VQBeTPolicy(config), stats)
