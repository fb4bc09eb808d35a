"""Diffusion Policy zarr replay buffers (`replay_buffer.zarr`), read into in-memory arrays.

Layout (docs/lerobot_dataset.md §2; zarr v2 stores read with zarr >= 3): `data/<key>` arrays concatenated over
all steps, `meta/episode_ends` int64 (E,) cumulative end-exclusive row of each episode.

`load_pusht_zarr` gives the PushT arrays under dataset keys, ready for `WindowDataset` and `compute_stats`
without converting: the official VQ-BeT PushT state observation is the 9 block keypoints (18 values) plus
the agent position (docs/vqbet.md §7), here `observation.environment_state` and `observation.state`.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from vqbet_ros import constants

PUSHT_FPS = 10  # Diffusion Policy PushT control rate (env `control_hz`)
PUSHT_CAMERA = "image"
PUSHT_TASK = "Push the T-shaped block onto the T-shaped target."


def open_replay(path: str | Path):
    """Open a replay buffer read-only; returns the zarr root group. Errors name the path and what is missing."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"zarr replay buffer `{path}` does not exist")
    if not (path / "meta" / "episode_ends").exists() or not (path / "data").is_dir():
        raise FileNotFoundError(
            f"`{path}` is not a Diffusion Policy replay buffer: expected `meta/episode_ends` and `data/<key>` "
            "arrays (e.g. ../shared/external/pusht_cchi_v7_replay.zarr)"
        )
    import zarr

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # extra files (a README) beside the arrays make zarr warn
        return zarr.open_group(str(path), mode="r")


def read_rows(array, start: int | None, stop: int | None, path: str | Path) -> np.ndarray:
    """`array[start:stop]` as NumPy. A chunk that cannot be decoded (a truncated or corrupt file) is named with
    its rows instead of surfacing as a codec traceback (numcodecs raises RuntimeError, ValueError, ...)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return np.asarray(array[start:stop])
    except Exception as err:  # noqa: BLE001 - every codec has its own exception types
        rows = f"rows {start or 0}..{array.shape[0] if stop is None else stop}"
        chunk = f" (chunks of {array.chunks[0]} rows)" if array.chunks else ""
        raise ValueError(
            f"`{path}`: `{array.path}` {rows}{chunk} could not be read: {type(err).__name__}: {err}. A chunk file "
            "of the replay buffer is damaged; restore it from its source (e.g. download it again)"
        ) from None


def episode_ranges_from_ends(episode_ends: np.ndarray) -> list[tuple[int, int]]:
    """Cumulative end-exclusive ends -> [(start, end), ...]."""
    ends = np.asarray(episode_ends, dtype=np.int64)
    starts = np.concatenate([[0], ends[:-1]])
    if np.any(ends <= starts):
        raise ValueError(f"`meta/episode_ends` must be strictly increasing, got {ends[:10].tolist()}...")
    return [(int(s), int(e)) for s, e in zip(starts, ends)]


def load_zarr_replay(
    path: str | Path, keys: list[str] | None = None, max_episodes: int | None = None
) -> tuple[dict[str, np.ndarray], list[tuple[int, int]]]:
    """Raw `data/<key>` arrays (only the rows of the first `max_episodes` episodes) and the episode ranges."""
    root = open_replay(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        available = sorted(root["data"].array_keys())
        keys = available if keys is None else keys
        missing = [k for k in keys if k not in available]
        if missing:
            raise KeyError(f"`{path}`: no `data/{missing[0]}` array; available keys: {available}")
        ranges = episode_ranges_from_ends(read_rows(root["meta/episode_ends"], None, None, path))
        if max_episodes is not None:
            if max_episodes < 1:
                raise ValueError(f"`max_episodes` must be >= 1, got {max_episodes}")
            ranges = ranges[:max_episodes]
        n = ranges[-1][1]
        return {k: read_rows(root["data"][k], 0, n, path) for k in keys}, ranges


def pusht_keypoint_names() -> list[str]:
    return [f"kp{i}_{axis}" for i in range(9) for axis in ("x", "y")]


def load_pusht_zarr(
    path: str | Path, *, with_images: bool = False, max_episodes: int | None = None
) -> tuple[dict[str, np.ndarray], list[tuple[int, int]]]:
    """PushT arrays under dataset keys, plus episode ranges.

    `observation.state` (N, 2) agent x, y (`state[:, :2]`); `observation.environment_state` (N, 18) the block
    keypoints flattened; `action` (N, 2) agent target (pixels); with `with_images`,
    `observation.images.image` uint8 (N, 3, 96, 96). All float32 values are the zarr's, unchanged.
    """
    raw, ranges = load_zarr_replay(path, ["state", "keypoint", "action"], max_episodes)
    arrays = {
        constants.STATE: np.ascontiguousarray(raw["state"][:, :2], dtype=np.float32),
        constants.ENV_STATE: raw["keypoint"].reshape(len(raw["keypoint"]), -1).astype(np.float32),
        constants.ACTION: raw["action"].astype(np.float32),
    }
    if with_images:
        arrays[constants.image_key(PUSHT_CAMERA)] = load_images_uint8(path, "img", ranges[-1][1])
    return arrays, ranges


def load_images_uint8(path: str | Path, key: str, num_rows: int, block_rows: int = 2048) -> np.ndarray:
    """The first `num_rows` images of `data/<key>` as uint8 (N, 3, H, W), converted block by block.

    PushT stores images as float32 0..255; converting in blocks keeps peak memory near the uint8 result
    (the full float array is 4x larger: 2.8 GB for PushT).
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        source = open_replay(path)["data"][key]
        if source.ndim != 4 or source.shape[-1] != 3:
            raise ValueError(f"`{path}`: `data/{key}` has shape {source.shape}; expected (N, H, W, 3) images")
        out = np.empty((num_rows, 3, source.shape[1], source.shape[2]), np.uint8)
        for start in range(0, num_rows, block_rows):
            stop = min(start + block_rows, num_rows)
            out[start:stop] = images_to_uint8(read_rows(source, start, stop, path)).transpose(0, 3, 1, 2)
    return out


def images_to_uint8(images: np.ndarray) -> np.ndarray:
    """Replay-buffer images (float 0..255 as in PushT, or uint8) -> uint8 (N, H, W, 3)."""
    if images.dtype == np.uint8:
        return images
    return np.clip(np.rint(images), 0, 255).astype(np.uint8)
