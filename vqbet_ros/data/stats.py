"""Feature statistics in LeRobot's `meta/stats.json` layout, and their count-weighted aggregation.

Every feature gets {min, max, mean, std, count, q01, q10, q50, q90, q99}, each shaped like one frame of the
feature (a scalar feature is shape [1]); `count` is [n]. Camera features get per-channel statistics of pixel
values scaled to [0, 1], shaped [3, 1, 1], computed on evenly sampled frames, strided to about 150 px when a
side is 300 px or more (docs/lerobot_dataset.md §1, LeRobot `compute_stats.py`).

Normalisation for training (min-max to [-1, 1], docs/vqbet.md §7) must use the training split only:
`stats_for_episodes(arrays, episode_ranges, train_episodes)`.

Returned statistics are float32 (the dtype the model computes in, so normalising a float32 tensor never
promotes it to float64), accumulated in float64; `count` is int64.
"""
from __future__ import annotations

import numpy as np

from vqbet_ros import constants

QUANTILES = {"q01": 0.01, "q10": 0.10, "q50": 0.50, "q90": 0.90, "q99": 0.99}
STAT_NAMES = ("min", "max", "mean", "std", "count", *QUANTILES)

MAX_IMAGE_FRAMES = 10_000  # LeRobot samples at most this many frames per episode for image stats
IMAGE_TARGET_SIDE = 150  # ... and strides frames with a side >= 300 px down to about this size
# Deviation: also cap the pixels per channel (memory and np.quantile time on 2 cores); image stats are only
# reported (images are not normalised by them), so a few million evenly sampled pixels are plenty.
MAX_IMAGE_PIXELS = 4_000_000


def is_image_array(key: str, array: np.ndarray) -> bool:
    """Camera arrays: keys under `observation.images.` or any uint8 (N, H, W, 3) / (N, 3, H, W) array."""
    return key.startswith(constants.IMAGES_PREFIX) or (array.dtype == np.uint8 and array.ndim == 4)


def compute_stats(
    arrays: dict[str, np.ndarray],
    rows: np.ndarray | None = None,
    *,
    max_image_frames: int = MAX_IMAGE_FRAMES,
) -> dict[str, dict[str, np.ndarray]]:
    """Statistics of each (N, ...) array over its first axis (or over `rows` of it).

    Camera arrays (see `is_image_array`) may be channels-last (N, H, W, 3) or channels-first (N, 3, H, W),
    uint8 (scaled by 1/255) or float already in [0, 1]. String/object arrays are skipped.
    """
    out: dict[str, dict[str, np.ndarray]] = {}
    for key, array in arrays.items():
        array = np.asarray(array)
        if array.dtype == object or array.dtype.kind in "USO":
            continue
        if array.ndim == 0:
            raise ValueError(f"`{key}`: expected an (N, ...) array, got a scalar")
        selected = np.arange(len(array)) if rows is None else np.asarray(rows, dtype=np.int64)
        if len(selected) == 0:
            raise ValueError(f"`{key}`: no rows to compute statistics on")
        if is_image_array(key, array):
            out[key] = _image_stats(key, array, selected, max_image_frames)
        else:
            values = array[selected] if rows is not None else array
            out[key] = _vector_stats(values.reshape(len(values), -1) if values.ndim == 1 else values)
    return out


def _vector_stats(values: np.ndarray) -> dict[str, np.ndarray]:
    x = values.astype(np.float64)
    return _finish(_summary(x, axis=0), len(x))


def _summary(x: np.ndarray, axis: int) -> dict[str, np.ndarray]:
    """min, max, mean, std and the LeRobot quantiles of `x` along `axis`."""
    stats = {"min": x.min(axis=axis), "max": x.max(axis=axis), "mean": x.mean(axis=axis), "std": x.std(axis=axis)}
    for name, q in QUANTILES.items():
        stats[name] = np.quantile(x, q, axis=axis)
    return stats


def _image_stats(key: str, array: np.ndarray, rows: np.ndarray, max_frames: int) -> dict[str, np.ndarray]:
    if array.ndim != 4 or 3 not in (array.shape[1], array.shape[-1]):
        raise ValueError(f"`{key}`: expected images (N, H, W, 3) or (N, 3, H, W), got shape {array.shape}")
    channels_last = array.shape[-1] == 3
    count = len(rows)  # frames represented, so aggregation weights by real frames, not sampled ones
    h, w = array.shape[1:3] if channels_last else array.shape[2:]
    stride = min(h, w) // IMAGE_TARGET_SIDE if min(h, w) >= 2 * IMAGE_TARGET_SIDE else 1
    max_frames = max(1, min(max_frames, MAX_IMAGE_PIXELS // (-(-h // stride) * -(-w // stride))))
    if len(rows) > max_frames:  # evenly spaced frames, as LeRobot's sample_indices
        rows = rows[np.round(np.linspace(0, len(rows) - 1, max_frames)).astype(np.int64)]
    frames = array[rows]
    if channels_last:
        frames = frames.transpose(0, 3, 1, 2)  # (n, 3, H, W)
    frames = frames[:, :, ::stride, ::stride]
    scale = 1.0 / 255.0 if frames.dtype == np.uint8 else 1.0
    pixels = frames.transpose(1, 0, 2, 3).reshape(3, -1).astype(np.float64) * scale  # (3, n*h*w)
    stats = {name: value.reshape(3, 1, 1) for name, value in _summary(pixels, axis=1).items()}
    return _finish(stats, count)


def _finish(stats: dict[str, np.ndarray], count: int) -> dict[str, np.ndarray]:
    out = {name: np.asarray(value, dtype=np.float32) for name, value in stats.items()}
    out["count"] = np.array([count], dtype=np.int64)
    return {name: out[name] for name in STAT_NAMES}


def aggregate_stats(stats_list: list[dict[str, dict[str, np.ndarray]]]) -> dict[str, dict[str, np.ndarray]]:
    """Merge per-episode statistics, weighting by `count` (LeRobot's `aggregate_stats`).

    min/max are exact; mean and std are exact (pooled variance: mean of the per-part variances plus the
    spread of the part means); quantiles are approximated by the count-weighted mean of the parts' quantiles,
    as LeRobot does.
    """
    if not stats_list:
        raise ValueError("aggregate_stats needs at least one stats dict")
    keys = list(dict.fromkeys(k for stats in stats_list for k in stats))
    out: dict[str, dict[str, np.ndarray]] = {}
    for key in keys:
        parts = [stats[key] for stats in stats_list if key in stats]
        counts = np.array([float(np.asarray(p["count"]).reshape(-1)[0]) for p in parts])
        total = counts.sum()
        if total <= 0:
            raise ValueError(f"`{key}`: counts sum to {total}; cannot aggregate")
        w = counts / total

        def weighted(name, parts=parts, w=w):
            stacked = np.stack([np.asarray(p[name], dtype=np.float64) for p in parts])
            return np.tensordot(w, stacked, axes=1)

        mean = weighted("mean")
        second = sum(
            wi * (np.asarray(p["std"], np.float64) ** 2 + (np.asarray(p["mean"], np.float64) - mean) ** 2)
            for wi, p in zip(w, parts)
        )
        merged = {
            "min": np.min(np.stack([np.asarray(p["min"], np.float64) for p in parts]), axis=0),
            "max": np.max(np.stack([np.asarray(p["max"], np.float64) for p in parts]), axis=0),
            "mean": mean,
            "std": np.sqrt(np.maximum(second, 0.0)),
        }
        for name in QUANTILES:
            if all(name in p for p in parts):
                merged[name] = weighted(name)
        result = {name: np.asarray(value, dtype=np.float32) for name, value in merged.items()}
        result["count"] = np.array([int(round(total))], dtype=np.int64)
        out[key] = {name: result[name] for name in STAT_NAMES if name in result}
    return out


def episode_rows(episode_ranges: list[tuple[int, int]], episodes: list[int] | None = None) -> np.ndarray:
    """Global row indices of the chosen episodes (positions in `episode_ranges`; None = all), in order."""
    chosen = range(len(episode_ranges)) if episodes is None else episodes
    parts = []
    for e in chosen:
        if not 0 <= e < len(episode_ranges):
            raise IndexError(f"episode {e} is out of range: the dataset has {len(episode_ranges)} episodes")
        start, stop = episode_ranges[e]
        parts.append(np.arange(start, stop, dtype=np.int64))
    return np.concatenate(parts) if parts else np.zeros(0, np.int64)


def stats_for_episodes(
    arrays: dict[str, np.ndarray],
    episode_ranges: list[tuple[int, int]],
    episodes: list[int] | None = None,
    **kwargs,
) -> dict[str, dict[str, np.ndarray]]:
    """`compute_stats` over the rows of the chosen episodes only (use the training split for normalisation)."""
    rows = episode_rows(episode_ranges, episodes)
    if len(rows) == 0:
        raise ValueError("stats_for_episodes: the chosen episode list is empty")
    return compute_stats(arrays, rows, **kwargs)
