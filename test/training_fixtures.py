"""Tiny PushT-shaped datasets and configs for the training tests (not a test module).

`make_pusht_zarr` writes a Diffusion-Policy replay buffer (zarr v2 layout, like the shared PushT one) with a few
short random-walk episodes, so the training tests need neither ../shared nor minutes of CPU. `train_tiny` runs
`vqbet-train`'s command line on a recorded dataset, as the end-to-end tests do.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml

from vqbet_ros.config_io import from_dict
from vqbet_ros.training.config import TrainConfig


def make_pusht_zarr(root: Path, episodes: int = 4, length: int = 24, seed: int = 0, image_size: int = 0) -> Path:
    """With `image_size`, also `data/img` (float 0..255 like PushT's) whose colour encodes the agent position."""
    import zarr

    rng = np.random.default_rng(seed)
    n = episodes * length
    agent = 256 + np.cumsum(rng.normal(0, 5, (n, 2)), axis=0)
    block = np.concatenate([256 + rng.normal(0, 20, (n, 2)), rng.uniform(0, 6.28, (n, 1))], axis=1)
    path = root / "tiny_pusht.zarr"
    group = zarr.open_group(str(path), mode="w", zarr_format=2)
    group.create_array("data/state", data=np.concatenate([agent, block], 1).astype(np.float32))
    group.create_array("data/keypoint", data=(block[:, None, :2] + rng.normal(0, 30, (n, 9, 2))).astype(np.float32))
    group.create_array("data/action", data=(agent + rng.normal(0, 3, (n, 2))).astype(np.float32))
    group.create_array("meta/episode_ends", data=np.arange(1, episodes + 1, dtype=np.int64) * length)
    if image_size:
        # Red and green levels follow the agent's x and y: what a frame shows determines the agent position.
        levels = np.clip((agent - agent.min(0)) / np.ptp(agent, axis=0) * 200 + 30, 0, 255)  # (n, 2)
        images = np.zeros((n, image_size, image_size, 3), np.float32)
        images[..., :2] = levels[:, None, None, :]
        group.create_array("data/img", data=images)
    return path


def tiny_config(data_path: Path, output_dir: Path, **stage2) -> TrainConfig:
    """A model of a few thousand parameters and runs of a few steps."""
    s2 = {"steps": 4, "batch_size": 16, "sequence_length": 8, "loss_positions": "last", "optimizer": "lerobot",
          "lr": 1e-3, "schedule": "constant", "freeze_fraction": 1.0}
    s2.update(stage2)
    return from_dict(TrainConfig, {
        "model": {
            "spec": {"joint_names": ["agent_x", "agent_y"], "action_names": ["agent_x", "agent_y"],
                     "low_dim": {"environment_state": 18}, "fps": 10.0, "n_obs_steps": 3, "chunk_size": 2},
            "tokenizer": {"hidden_dim": 16, "latent_dim": 8, "codebook_size": 4},
            "prior": {"n_layer": 1, "n_head": 2, "n_embd": 16, "output_dim": 16, "block_size": 8},
            "heads": {"hidden_dim": 16},
            "state_hidden_dim": 16,
        },
        "data": {"path": str(data_path), "val_fraction": 0.25},
        "stage1": {"steps": 4, "batch_size": 32},
        "stage2": s2,
        "output_dir": str(output_dir),
        "num_threads": 1,
        "log_every": 1,
        "val_every": 2,
        "checkpoint_every": 2,
    })


def train_tiny(dataset_root: Path, run_dir: Path, spec: dict, **model) -> Path:
    """`vqbet-train --config <yaml>` for a few steps of a tiny model with this `spec` (plus `model` sections,
    e.g. `vision`) on the dataset; the final checkpoint's directory."""
    from vqbet_ros.training.train import main as train_main

    config = {
        "model": {
            "spec": spec,
            "tokenizer": {"hidden_dim": 16, "latent_dim": 16, "codebook_size": 4},
            "prior": {"n_layer": 1, "n_head": 1, "n_embd": 16, "output_dim": 16, "block_size": 8},
            "heads": {"hidden_dim": 32},
            **model,
        },
        "data": {"path": str(dataset_root), "val_fraction": 0.0},
        "stage1": {"steps": 4, "batch_size": 16},
        "stage2": {"steps": 3, "batch_size": 4},
        "output_dir": str(run_dir), "device": "cpu", "num_threads": 1, "log_every": 1, "val_every": 0,
        "checkpoint_every": 0,
    }
    path = run_dir.parent / "train_tiny.yaml"
    path.write_text(yaml.safe_dump(config))
    assert train_main(["--config", str(path), "--no-progress"]) in (None, 0)
    return run_dir / "final"
