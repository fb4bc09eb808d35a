"""Read a LeRobotDataset v3.0 directory (the format the recorder writes and LeRobot >= 0.4 publishes).

Layout (see docs/lerobot_dataset.md §1): `meta/info.json` (fps, features, path templates),
`meta/episodes/chunk-*/file-*.parquet` (one row per episode: length, global row range, which data and video
file holds it and where the episode starts in that video), `data/chunk-*/file-*.parquet` (one row per frame,
many episodes per file), `videos/<key>/chunk-*/file-*.mp4` (episodes concatenated; the frame of row t of an
episode sits at `from_timestamp + t / fps`).

Shapes: N frames in the dataset, T frames in one episode, H x W images, RGB channels last as stored.
"""
from __future__ import annotations

import json
import logging
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from vqbet_ros import constants
from vqbet_ros.data import lerobot_layout as layout

logger = logging.getLogger(__name__)

_VIDEO_DECODERS = {"libdav1d", "libaom-av1", "av1", "h264", "hevc", "vp9", "mpeg4"}
STAT_NAMES = ("min", "max", "mean", "std", "count", "q01", "q10", "q50", "q90", "q99")

_CONVERT_HINT = (
    "convert it with LeRobot >= 0.4 first: `python -m lerobot.datasets.v30.convert_dataset_v21_to_v30 "
    "--repo-id=<repo_id>` (LeRobot's dataset v3 docs describe the converter)"
)


def read_info(path: Path) -> dict:
    """`meta/info.json` of a v3 dataset as a dict. Refuses, naming the file, a damaged one (not JSON, not an
    object, without a positive `fps` and a `features` object of objects) and other versions (v2.1: how to
    convert)."""
    try:
        info = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"`{path}` could not be read as JSON ({err}); the dataset's metadata is damaged: "
                         "restore the file from a copy, or re-create the dataset") from None
    if not isinstance(info, dict):
        raise ValueError(f"`{path}` holds a JSON {type(info).__name__}, expected an object with `fps` and "
                         "`features`; restore the file from a copy, or re-create the dataset")
    version = str(info.get("codebase_version", "<missing>"))
    if version.startswith("v2") or version.startswith("v1"):
        raise ValueError(f"`{path}`: codebase_version is {version!r}, this reader supports {layout.VERSION} "
                         f"only; {_CONVERT_HINT}")
    if not version.startswith("v3."):
        raise ValueError(f"`{path}`: unsupported codebase_version {version!r}; expected {layout.VERSION}")
    for key in ("fps", "features"):
        if key not in info:
            raise ValueError(f"`{path}`: required key `{key}` is missing")
    fps, features = info["fps"], info["features"]
    if isinstance(fps, bool) or not isinstance(fps, (int, float)) or not 0 < fps < float("inf"):
        raise ValueError(f"`{path}`: `fps` is {fps!r}; expected a positive number")
    if not isinstance(features, dict) or not all(isinstance(f, dict) for f in features.values()):
        raise ValueError(f"`{path}`: `features` must map each feature name to an object with dtype and shape")
    return info


class LeRobotDataset:
    """A LeRobotDataset v3.0 on disk, read with pyarrow (tables) and PyAV (videos).

    Nothing is loaded eagerly except the metadata; `read_column` and `decode_video` read on demand.

    Attributes:
        root: dataset directory.
        info: `meta/info.json` as a dict.
        fps: frames per second (int as stored).
        features: feature name -> {"dtype", "shape", "names", ...}.
        episodes: one dict per episode (sorted by `episode_index`) with the `meta/episodes` columns except the
            per-episode `stats/...` columns (see `episode_stats`).
        episode_ranges: (from, to) global row range of each episode, end-exclusive.
    """

    def __init__(self, root: str | Path):
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"dataset root `{self.root}` does not exist or is not a directory")
        info_path = layout.info_path(self.root)
        if not info_path.is_file():
            raise FileNotFoundError(
                f"`{info_path}` is missing: `{self.root}` is not a LeRobot dataset (expected meta/info.json, "
                "meta/episodes/, data/)"
            )
        self.info = read_info(info_path)
        self.fps = self.info["fps"]
        self.features: dict[str, dict] = self.info["features"]
        self._episode_table = self._read_episodes()
        self.episodes: list[dict] = [
            {k: _plain(v) for k, v in row.items() if not k.startswith("stats/")}
            for row in self._episode_table.to_dict("records")
        ]
        self.episode_ranges: list[tuple[int, int]] = [
            (int(e["dataset_from_index"]), int(e["dataset_to_index"])) for e in self.episodes
        ]
        self._check_episodes()
        self._episode_pos = {int(e["episode_index"]): i for i, e in enumerate(self.episodes)}

    def __repr__(self) -> str:
        return (f"LeRobotDataset({str(self.root)!r}: {self.num_episodes} episodes, {self.num_frames} frames at "
                f"{self.fps} fps, features {self.policy_keys})")

    # ----------------------------------------------------------------------------------------------- metadata
    @property
    def num_episodes(self) -> int:
        return len(self.episodes)

    @property
    def num_frames(self) -> int:
        return sum(int(e["length"]) for e in self.episodes)

    @property
    def video_keys(self) -> list[str]:
        return [k for k, f in self.features.items() if f.get("dtype") == "video"]

    @property
    def image_keys(self) -> list[str]:
        return [k for k, f in self.features.items() if f.get("dtype") == "image"]

    @property
    def camera_keys(self) -> list[str]:
        """Keys of every camera feature, video or image."""
        return [k for k, f in self.features.items() if f.get("dtype") in ("video", "image")]

    @property
    def stats(self) -> dict[str, dict[str, np.ndarray]]:
        """`meta/stats.json` as numpy: float32 statistics, int64 `count`; {} if the file is absent."""
        path = self.root / "meta" / "stats.json"
        if not path.is_file():
            return {}
        return stats_from_json(json.loads(path.read_text()))

    @property
    def tasks(self) -> dict[int, str]:
        """task_index -> task string, from `meta/tasks.parquet` (index = task string)."""
        path = self.root / "meta" / "tasks.parquet"
        if not path.is_file():
            return {}
        frame = pd.read_parquet(path)
        if "task" in frame.columns:  # tolerate a plain column instead of the pandas index
            return {int(i): str(t) for t, i in zip(frame["task"], frame["task_index"])}
        return {int(i): str(t) for t, i in zip(frame.index, frame["task_index"])}

    def feature_names(self, key: str) -> list[str] | None:
        """Ordered element names of a vector feature (joint names); LeRobot's older dict form such as
        `{"motors": [...]}` is flattened. None when the dataset gives no names."""
        names = self._feature(key).get("names")
        if isinstance(names, dict):
            names = [str(n) for group in names.values() for n in (group if isinstance(group, list) else [group])]
        return None if names is None else [str(n) for n in names]

    def episode_stats(self, episode_index: int) -> dict[str, dict[str, np.ndarray]]:
        """Per-episode statistics from the `stats/<feature>/<stat>` columns of meta/episodes."""
        row = self._episode_table.iloc[self._position(episode_index)]
        out: dict[str, dict[str, np.ndarray]] = {}
        for column, value in row.items():
            if not column.startswith("stats/"):
                continue
            feature, stat = column[len("stats/"):].rsplit("/", 1)
            out.setdefault(feature, {})[stat] = _nested_to_numpy(value)
        return stats_from_json(out)

    def _position(self, episode_index: int) -> int:
        try:
            return self._episode_pos[int(episode_index)]
        except KeyError:
            raise KeyError(
                f"episode_index {episode_index} is not in `{self.root}` "
                f"(it has episodes {min(self._episode_pos)}..{max(self._episode_pos)})"
            ) from None

    def episode(self, episode_index: int) -> dict:
        return self.episodes[self._position(episode_index)]

    def _read_episodes(self) -> pd.DataFrame:
        files = layout.episode_files(self.root)
        if not files:
            raise FileNotFoundError(
                f"`{self.root / layout.EPISODES_DIR}` holds no {layout.EPISODES_GLOB}: the dataset has no "
                "finished episode (or the writer did not finalize)"
            )
        table = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)
        required = ["episode_index", "length", "dataset_from_index", "dataset_to_index"]
        missing = [c for c in required if c not in table.columns]
        if missing:
            raise ValueError(f"`{files[0]}`: meta/episodes lacks column(s) {missing}")
        return table.sort_values("episode_index", kind="stable").reset_index(drop=True)

    def _check_episodes(self) -> None:
        for e in self.episodes:
            start, stop = int(e["dataset_from_index"]), int(e["dataset_to_index"])
            if stop - start != int(e["length"]):
                raise ValueError(
                    f"`{self.root}`: episode {e['episode_index']} has length {e['length']} but rows "
                    f"{start}..{stop}; meta/episodes is inconsistent"
                )
        total = self.info.get("total_frames")
        if total is not None and total != self.num_frames:
            raise ValueError(
                f"`{self.root}/meta/info.json` says total_frames={total} but meta/episodes lists "
                f"{self.num_frames} frames; the dataset was not finalized consistently"
            )

    # ------------------------------------------------------------------------------------------ parquet data
    def _feature(self, key: str) -> dict:
        if key not in self.features:
            raise KeyError(
                f"feature `{key}` is not in `{self.root}`; available features: {sorted(self.features)}"
            )
        return self.features[key]

    def _data_files(self) -> list[tuple[Path, int, int]]:
        """(path, first global row, row count) for every data file, in global row order."""
        template = self.info.get("data_path") or layout.DATA_PATH
        seen: dict[tuple[int, int], tuple[int, int]] = {}
        for e in self.episodes:
            where = (int(e.get("data/chunk_index", 0)), int(e.get("data/file_index", 0)))
            start, stop = int(e["dataset_from_index"]), int(e["dataset_to_index"])
            lo, hi = seen.get(where, (start, stop))
            seen[where] = (min(lo, start), max(hi, stop))
        out = []
        for (chunk, file), (lo, hi) in sorted(seen.items(), key=lambda kv: kv[1][0]):
            path = self.root / template.format(chunk_index=chunk, file_index=file)
            if not path.is_file():
                raise FileNotFoundError(f"data file `{path}` listed in meta/episodes is missing")
            out.append((path, lo, hi - lo))
        return out

    def read_column(self, key: str) -> np.ndarray:
        """One parquet feature over the whole dataset, (N, *shape) in global row order.

        The shape is the feature's `shape` from info.json, so a [1]-shaped feature gives (N, 1). `image`
        features decode to uint8 (N, H, W, 3). `video` features have no column: use `decode_video`.
        """
        feature = self._feature(key)
        if feature.get("dtype") == "video":
            raise ValueError(
                f"feature `{key}` is a video (no parquet column); use decode_video({key!r}, episode_index)"
            )
        parts, index_parts = [], []
        for path, first, count in self._data_files():
            names = pq.read_schema(path).names
            if key not in names:
                raise ValueError(f"`{path}` has no column `{key}` although info.json declares it; columns: {names}")
            has_index = constants.INDEX in names and key != constants.INDEX
            table = pq.read_table(path, columns=[key, constants.INDEX] if has_index else [key])
            if table.num_rows != count:
                logger.debug("%s has %d rows, episodes list %d", path, table.num_rows, count)
            parts.append(self._column_to_numpy(table.column(key), feature, key))
            index_parts.append(table.column(constants.INDEX).to_numpy() if has_index else None)
        values = np.concatenate(parts)
        # Rows are stored in global order; the `index` column (when present) confirms or restores it.
        index = None if any(p is None for p in index_parts) else np.concatenate(index_parts)
        if index is not None and not np.array_equal(index, np.arange(len(index))):
            order = np.argsort(index, kind="stable")
            if not np.array_equal(index[order], np.arange(len(index))):
                raise ValueError(f"`{self.root}`: the `index` column is not 0..N-1 across the data files")
            values = values[order]
        if len(values) != self.num_frames:
            raise ValueError(
                f"`{self.root}`: data files hold {len(values)} rows for `{key}`, episodes list {self.num_frames}"
            )
        return values

    def read_episode_column(self, key: str, episode_index: int) -> np.ndarray:
        """`read_column(key)` restricted to one episode's rows (reads only that episode's data file)."""
        feature = self._feature(key)
        ep = self.episode(episode_index)
        template = self.info.get("data_path") or layout.DATA_PATH
        path = self.root / template.format(
            chunk_index=int(ep.get("data/chunk_index", 0)), file_index=int(ep.get("data/file_index", 0))
        )
        if not path.is_file():
            raise FileNotFoundError(f"data file `{path}` of episode {episode_index} is missing")
        table = pq.read_table(path, columns=[constants.INDEX])
        index = table.column(constants.INDEX).to_numpy()
        rows = np.nonzero((index >= ep["dataset_from_index"]) & (index < ep["dataset_to_index"]))[0]
        if len(rows) != int(ep["length"]):
            raise ValueError(f"`{path}` holds {len(rows)} rows of episode {episode_index}, expected {ep['length']}")
        sub = pq.read_table(path, columns=[key]).take(pa.array(rows))
        return self._column_to_numpy(sub.column(key), feature, key)

    @staticmethod
    def _column_to_numpy(column: pa.ChunkedArray, feature: dict, key: str) -> np.ndarray:
        shape = tuple(feature.get("shape") or [1])
        dtype = feature.get("dtype")
        if dtype == "image":
            return np.stack([decode_image_bytes(v["bytes"], key) for v in column.to_pylist()]) \
                if len(column) else np.zeros((0, *shape), np.uint8)
        if dtype == "string":
            return np.asarray(column.to_pylist(), dtype=object).reshape(-1, *shape[1:])
        array = column.combine_chunks()
        while pa.types.is_list(array.type) or pa.types.is_fixed_size_list(array.type) \
                or pa.types.is_large_list(array.type):
            array = array.flatten()
        values = array.to_numpy(zero_copy_only=False)
        try:
            return values.reshape(len(column), *shape)
        except ValueError:
            raise ValueError(
                f"feature `{key}`: column holds {values.size} values for {len(column)} rows, which does not fit "
                f"the declared shape {list(shape)}"
            ) from None

    # ---------------------------------------------------------------------------------------------- frames
    def video_path(self, key: str, episode_index: int) -> Path:
        ep = self.episode(episode_index)
        template = self.info.get("video_path") or layout.VIDEO_PATH
        return self.root / template.format(
            video_key=key,
            chunk_index=int(ep.get(f"videos/{key}/chunk_index", 0)),
            file_index=int(ep.get(f"videos/{key}/file_index", 0)),
        )

    def decode_video(
        self,
        key: str,
        episode_index: int,
        *,
        start: int = 0,
        stop: int | None = None,
        size: tuple[int, int] | None = None,
    ) -> np.ndarray:
        """Frames `start:stop` of one episode of video feature `key` as uint8 (T, H, W, 3) RGB.

        Seeks once to the keyframe before the episode and decodes forward (no per-frame seek). Frame i of the
        episode is the one shown at `from_timestamp + i / fps`. `size=(H, W)` resizes while converting (area
        interpolation). Raises if the file holds a different number of frames than the episode's length.
        """
        feature = self._feature(key)
        if feature.get("dtype") != "video":
            raise ValueError(
                f"feature `{key}` has dtype {feature.get('dtype')!r}, not video; "
                f"video features: {self.video_keys}" + (" (use read_frames for image features)"
                                                        if feature.get("dtype") == "image" else "")
            )
        ep = self.episode(episode_index)
        length = int(ep["length"])
        stop = length if stop is None else min(stop, length)
        if not 0 <= start <= stop:
            raise ValueError(f"frame range {start}:{stop} is outside episode {episode_index} (length {length})")
        path = self.video_path(key, episode_index)
        if not path.is_file():
            raise FileNotFoundError(f"video file `{path}` of feature `{key}`, episode {episode_index} is missing")
        from_ts = float(ep.get(f"videos/{key}/from_timestamp", 0.0))
        try:
            frames = _decode_rows(path, from_ts, self.fps, start, stop, size)
        except av.FFmpegError as err:
            decoders = sorted(c for c in av.codecs_available if c in _VIDEO_DECODERS)
            raise ValueError(
                f"`{path}` (feature `{key}`, codec {feature.get('info', {}).get('video.codec', '?')}) could not be "
                f"decoded: {err}. This PyAV/FFmpeg build has the decoders {decoders}; AV1 needs libdav1d or "
                "libaom-av1 (install PyAV wheels from PyPI, which bundle dav1d)"
            ) from err
        if len(frames) != stop - start:
            raise ValueError(
                f"`{path}`: decoded {len(frames)} frames for episode {episode_index} rows {start}:{stop}, expected "
                f"{stop - start} (from_timestamp {from_ts:.4f} s at {self.fps} fps); the video is shorter than "
                "the episode"
            )
        if not frames:
            h, w = size if size is not None else feature["shape"][:2]
            return np.zeros((0, h, w, 3), np.uint8)
        return np.stack(frames)

    def read_frames(self, key: str, episode_index: int, *, size: tuple[int, int] | None = None) -> np.ndarray:
        """All frames of one episode of camera `key` (video or image dtype) as uint8 (T, H, W, 3)."""
        feature = self._feature(key)
        if feature.get("dtype") == "video":
            return self.decode_video(key, episode_index, size=size)
        if feature.get("dtype") != "image":
            raise ValueError(f"feature `{key}` is not a camera (dtype {feature.get('dtype')!r}); "
                             f"cameras: {self.camera_keys}")
        frames = self.read_episode_column(key, episode_index)
        return resize_frames(frames, size) if size is not None else frames

    def load_frames(
        self,
        key: str,
        *,
        size: tuple[int, int] | None = None,
        episodes: list[int] | None = None,
        channels_first: bool = True,
    ) -> np.ndarray:
        """Every frame of camera `key` decoded into one uint8 array in global row order.

        (N, 3, H, W) with `channels_first` (what the model takes), else (N, H, W, 3). With `episodes`, rows of
        the other episodes stay zero (so global row indices still apply) unless none were requested.
        """
        feature = self._feature(key)
        h, w = size if size is not None else tuple(feature["shape"][:2])
        shape = (self.num_frames, 3, h, w) if channels_first else (self.num_frames, h, w, 3)
        out = np.zeros(shape, np.uint8)
        wanted = [e["episode_index"] for e in self.episodes] if episodes is None else episodes
        for episode_index in wanted:
            lo, hi = self.episode_ranges[self._position(episode_index)]
            frames = self.read_frames(key, episode_index, size=size)
            out[lo:hi] = frames.transpose(0, 3, 1, 2) if channels_first else frames
        return out

    @property
    def policy_keys(self) -> list[str]:
        """`action` plus every `observation.*` feature: what a policy trains on (no index/time columns)."""
        return [k for k in self.features if k == constants.ACTION or k.startswith("observation.")]

    def load_arrays(
        self,
        keys: list[str] | None = None,
        *,
        image_size: tuple[int, int] | dict[str, tuple[int, int]] | None = None,
    ) -> dict[str, np.ndarray]:
        """Training arrays over all rows: parquet features (N, *shape) and cameras uint8 (N, 3, H, W).

        `keys` defaults to `policy_keys`. `image_size` is one (H, W) for every camera or camera key -> (H, W);
        cameras not listed keep their stored size. Pair with `episode_ranges` for `WindowDataset`.
        """
        out = {}
        for key in self.policy_keys if keys is None else keys:
            feature = self._feature(key)
            if feature.get("dtype") in ("video", "image"):
                size = image_size.get(key) if isinstance(image_size, dict) else image_size
                out[key] = self.load_frames(key, size=tuple(size) if size is not None else None)
            else:
                out[key] = self.read_column(key)
        return out


# --------------------------------------------------------------------------------------------------- helpers
def decode_image_bytes(data: bytes, key: str = "image") -> np.ndarray:
    """PNG (or JPEG) bytes -> uint8 (H, W, 3) RGB, decoded with PyAV."""
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        codec = "png"
    elif data[:2] == b"\xff\xd8":
        codec = "mjpeg"
    else:
        raise ValueError(f"feature `{key}`: image bytes are neither PNG nor JPEG (starts with {data[:8]!r})")
    decoder = av.CodecContext.create(codec, "r")
    frames = decoder.decode(av.Packet(data))
    if not frames:
        raise ValueError(f"feature `{key}`: could not decode a {codec} image")
    return frames[0].to_ndarray(format="rgb24")


def _decode_rows(
    path: Path, from_ts: float, fps: float, start: int, stop: int, size: tuple[int, int] | None
) -> list[np.ndarray]:
    """Rows start:stop of an episode whose frame k sits at `from_ts + k / fps` in `path`: one seek to the
    keyframe before row `start`, then sequential decoding. Raises on a dropped or duplicated frame."""
    fps = float(Fraction(fps).limit_denominator(1001))
    half = 0.5 / fps  # a frame belongs to the row whose time is within half a period
    first_ts = from_ts + start / fps
    height, width = size if size is not None else (None, None)
    frames: list[np.ndarray] = []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        if first_ts > half:
            container.seek(max(int((first_ts - half) / stream.time_base), 0), stream=stream, backward=True,
                           any_frame=False)
        for frame in container.decode(stream):
            if frame.pts is None:
                raise ValueError(f"`{path}`: a frame without a timestamp; cannot align it to episode rows")
            k = round((float(frame.time) - from_ts) * fps)
            if k < start:
                continue
            if k >= stop:
                break
            expected = start + len(frames)
            if k != expected or abs(float(frame.time) - (from_ts + k / fps)) > half:
                raise ValueError(
                    f"`{path}`: row {expected} expected at {from_ts + expected / fps:.4f} s, found a frame at "
                    f"{float(frame.time):.4f} s (dropped or duplicated frame; the video does not match the rows)"
                )
            frames.append(frame.to_ndarray(format="rgb24", width=width, height=height,
                                           interpolation="AREA" if size is not None else None))
            if len(frames) == stop - start:
                break
    return frames


def resize_frames(frames: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """uint8 (T, H, W, 3) -> (T, h, w, 3) with area interpolation (PyAV's swscale)."""
    h, w = size
    if frames.shape[1:3] == (h, w):
        return frames
    out = np.empty((len(frames), h, w, 3), np.uint8)
    for i, f in enumerate(frames):
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24")
        out[i] = frame.to_ndarray(format="rgb24", width=w, height=h, interpolation="AREA")
    return out


def stats_from_json(data: dict) -> dict[str, dict[str, np.ndarray]]:
    """stats.json-like nested lists -> numpy (float32 statistics, int64 `count`)."""
    out: dict[str, dict[str, np.ndarray]] = {}
    for feature, stats in data.items():
        out[feature] = {
            name: np.asarray(value, dtype=np.int64 if name == "count" else np.float32)
            for name, value in stats.items()
        }
    return out


def _nested_to_numpy(value) -> np.ndarray:
    """Object arrays of arrays (how pandas reads nested parquet lists) -> one numeric array."""
    if isinstance(value, np.ndarray) and value.dtype == object:
        return np.stack([_nested_to_numpy(v) for v in value]) if len(value) else np.zeros(0)
    return np.asarray(value)


def _plain(value):
    """numpy scalars/arrays from pandas -> plain Python, so episode dicts print and compare simply."""
    if isinstance(value, np.ndarray):
        return [_plain(v) for v in value.tolist()] if value.dtype == object else value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value
