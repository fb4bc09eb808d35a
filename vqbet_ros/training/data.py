"""Training arrays: read a dataset once into memory, split by episode, normalize with training-split stats.

Everything the spec observes (state, low-dim extras, cameras as uint8 (N, 3, H, W)) plus the actions is read
under its dataset key. Min-max statistics come from the training episodes only (`data/stats.py`), and the
state, low-dim and action arrays are normalized here once, so batches are plain gathers.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from vqbet_ros import constants
from vqbet_ros.data.stats import stats_for_episodes
from vqbet_ros.data.windows import split_episodes
from vqbet_ros.model.config import FeatureSpec
from vqbet_ros.model.normalize import Normalizer
from vqbet_ros.training.config import DataConfig

log = logging.getLogger(__name__)


@dataclass
class TrainingData:
    arrays: dict[str, np.ndarray]          # key -> (N, ...): float32 normalized, images uint8 (N, 3, H, W)
    episode_ranges: list[tuple[int, int]]  # global [from, to) rows per episode
    train_episodes: list[int]
    val_episodes: list[int]
    stats: dict[str, dict[str, np.ndarray]]
    # Encoder-pretraining targets (`encoder_pretrain.targets`): key -> (N, n) float32, min-max normalized with
    # training-split stats of their own (not part of `stats`, which the checkpoint keeps).
    targets: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def num_frames(self) -> int:
        return len(self.arrays[constants.ACTION])


def spec_keys(spec: FeatureSpec) -> tuple[list[str], list[str]]:
    """(vector keys the spec observes, camera keys)."""
    vector = ([constants.STATE] if spec.joint_names else []) + list(spec.low_dim_keys.values())
    return vector, list(spec.image_keys.values())


def _expected_size(spec: FeatureSpec, key: str) -> int:
    if key == constants.STATE:
        return spec.state_dim
    if key == constants.ACTION:
        return spec.action_dim
    return next(size for name, size in spec.low_dim.items() if constants.low_dim_key(name) == key)


def _read_lerobot(cfg: DataConfig, spec: FeatureSpec, extra: list[str]
                  ) -> tuple[dict[str, np.ndarray], list[tuple[int, int]]]:
    from vqbet_ros.data.lerobot_reader import LeRobotDataset

    ds = LeRobotDataset(cfg.path)
    if abs(float(ds.fps) - spec.fps) > 1e-6:
        raise ValueError(f"`model.spec.fps` is {spec.fps} but dataset `{cfg.path}` was recorded at {ds.fps} fps; "
                         f"set model.spec.fps={ds.fps} (the history and chunks are in dataset frames)")
    episodes = ds.episodes if not cfg.max_episodes else ds.episodes[:cfg.max_episodes]
    ranges = ds.episode_ranges[:len(episodes)]
    vector, cameras = spec_keys(spec)
    arrays = {}
    for key in vector + extra + [constants.ACTION]:
        if key not in ds.features:
            raise KeyError(f"dataset `{cfg.path}` has no feature `{key}`, which `model.spec` or "
                           f"`encoder_pretrain.targets` needs; "
                           f"its features: {sorted(ds.features)}")
        arrays[key] = np.asarray(ds.read_column(key), dtype=np.float32).reshape(ds.num_frames, -1)
    for cam, key in spec.image_keys.items():
        if key not in ds.features:
            raise KeyError(f"dataset `{cfg.path}` has no camera `{key}` (model.spec.cameras.{cam}); "
                           f"its cameras: {ds.camera_keys}")
        size = tuple(spec.cameras[cam][1:])
        arrays[key] = ds.load_frames(key, size=size, episodes=[e["episode_index"] for e in episodes])
    end = ranges[-1][1]
    return {k: v[:end] for k, v in arrays.items()}, ranges


def _read_zarr(cfg: DataConfig, spec: FeatureSpec, extra: list[str]
               ) -> tuple[dict[str, np.ndarray], list[tuple[int, int]]]:
    """A Diffusion-Policy PushT replay buffer, under the keys of `data/zarr_replay.load_pusht_zarr`."""
    from vqbet_ros.data.zarr_replay import load_pusht_zarr

    arrays, ranges = load_pusht_zarr(cfg.path, with_images=bool(spec.cameras),
                                     max_episodes=cfg.max_episodes or None)
    if spec.cameras:
        if len(spec.cameras) != 1:
            raise ValueError(f"`model.spec.cameras`: a PushT zarr has one camera, the spec lists {list(spec.cameras)}")
        (cam, shape), = spec.cameras.items()
        images = arrays.pop(next(k for k in arrays if k.startswith(constants.IMAGES_PREFIX)))
        if list(images.shape[1:]) != list(shape):
            from vqbet_ros.data.lerobot_reader import resize_frames
            images = resize_frames(images.transpose(0, 2, 3, 1), tuple(shape[1:])).transpose(0, 3, 1, 2)
        arrays[constants.image_key(cam)] = np.ascontiguousarray(images)
    return arrays, ranges


def _check_finite(values: np.ndarray, ranges: list[tuple[int, int]], key: str, path: str) -> None:
    """Refuse NaN/inf (as float32, the training dtype) naming the first bad episode, frame and feature: one
    such value makes the stats, the loss and every weight of the checkpoint NaN."""
    bad_rows = np.flatnonzero(~np.isfinite(values).all(axis=1))
    if len(bad_rows) == 0:
        return
    row = int(bad_rows[0])
    episode = next(i for i, (start, stop) in enumerate(ranges) if start <= row < stop)
    raise ValueError(
        f"`{path}`: feature `{key}` is not finite at episode {episode}, frame {row - ranges[episode][0]} "
        f"(values {values[row].tolist()}; {len(bad_rows)} such frame(s) in all). Repair or remove that episode "
        "from the dataset before training"
    )


def load_training_data(cfg: DataConfig, spec: FeatureSpec, stats: dict | None = None,
                       targets: list[str] | tuple[str, ...] = ()) -> TrainingData:
    """Read, split and normalize. `stats` (e.g. from a stage-1 checkpoint) replaces computed ones; `targets`
    are extra float columns for encoder pretraining."""
    reader = _read_zarr if cfg.resolved_format == "zarr" else _read_lerobot
    raw, ranges = reader(cfg, spec, list(targets))
    vector, cameras = spec_keys(spec)
    for key in vector + [constants.ACTION]:
        if key not in raw:
            raise KeyError(f"`{cfg.path}` gives {sorted(raw)}, but `model.spec` needs `{key}`")
        want = _expected_size(spec, key)
        if raw[key].shape[1] != want:
            raise ValueError(f"`{key}` in `{cfg.path}` has {raw[key].shape[1]} values per frame but `model.spec` "
                             f"declares {want}; fix model.spec (joint_names / action_names / low_dim)")
    for key in vector + [constants.ACTION]:
        _check_finite(raw[key], ranges, key, cfg.path)
    train, val = split_episodes(len(ranges), cfg.val_fraction, cfg.split_seed)
    if stats is None:
        stats = stats_for_episodes({k: raw[k] for k in vector + [constants.ACTION]}, ranges, train)
    normalizer = Normalizer(stats)
    arrays = {k: normalizer.normalize(k, raw[k]).astype(np.float32) for k in vector + [constants.ACTION]}
    arrays.update({k: raw[k] for k in cameras})
    target_arrays = {}
    for key in targets:
        if key not in raw:
            raise KeyError(f"`encoder_pretrain.targets`: `{cfg.path}` has no float column `{key}`; "
                           f"it gives {sorted(k for k in raw if raw[k].ndim == 2)}")
        values = np.asarray(raw[key], np.float32).reshape(len(raw[key]), -1)
        _check_finite(values, ranges, key, cfg.path)
        target_stats = stats_for_episodes({key: values}, ranges, train)
        target_arrays[key] = Normalizer(target_stats).normalize(key, values).astype(np.float32)
    log.info("data: %d frames, %d episodes (%d train / %d val) from %s", len(raw[constants.ACTION]), len(ranges),
             len(train), len(val), cfg.path)
    return TrainingData(arrays, ranges, train, val, stats, target_arrays)
