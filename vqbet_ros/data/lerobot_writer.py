"""Append episodes durably to a LeRobotDataset v3.0 (ROS-free; used by the recorder node and `vqbet-convert`).

    writer = LeRobotWriter.open_or_create(root, fps=30, features=features, robot_type="so101")
    writer.start_episode(task="pick the cube")
    for ...: writer.add_frame({"observation.state": q, "action": a, "observation.images.front": rgb})
    future = writer.save_episode(extras={"recorder/stale_frames": 0})   # returns at once
    future.result()  # -> SavedEpisode, once the episode is complete on disk
    writer.close()   # waits for every queued save

Layout and columns follow docs/lerobot_dataset.md §1 (LeRobot v0.4). The choices this writer makes inside that
format, and why:

- **One data file and one mp4 per camera per episode** (`file_index` advances every episode, rolling to the next
  chunk after `chunks_size` files). LeRobot keeps one parquet writer open across episodes and appends episodes to
  shared mp4s, which is why a crash leaves footer-less files (docs/ros2.md §6 problem 2); here
  every file is finished, fsynced and renamed into place before its episode is committed, and no finished file
  is ever modified again (the crash-safe pattern of almond-bot/axol PR 193, docs/ros2.md §6). Readers locate
  episodes through `meta/episodes` chunk/file columns, so the format is unchanged.
- **Commit point = atomic rewrite of the current `meta/episodes` file** (temp + fsync + rename,
  `data/atomic_files.py`). Order per episode: data parquet and videos (in `.partial/`, renamed into `data/` and
  `videos/`), then `meta/tasks.parquet` if a task is new, then the `meta/episodes` file, then `info.json` and
  `stats.json` (derived; repaired on open). An episode exists iff its row is in `meta/episodes`. On open,
  anything else (`.partial/`, `*.tmp`, data/video files no episode references) is a leftover of an interrupted
  save and is removed.
- **Encoding runs on one thread per camera (`data/video_encoder.py`), parquet/metadata on a commit thread**, fed
  through bounded queues: `add_frame` only copies arrays and enqueues them; `save_episode` returns a Future.
  Recording the next episode never waits for the previous one to be encoded. A full queue blocks `add_frame`
  (backpressure, right for offline conversion) or, with `put_timeout_s` set (live recording), raises
  `WriterOverloadedError` after that long and discards the open episode: never a silent drop.
- **One writer per root**: `RootLock` (flock on `.writer.lock`) is taken before anything is written, also on a
  fresh root, so a second recorder or converter is refused instead of interleaving its files with ours.
- **A frame is all or nothing**: `add_frame` checks every feature (keys, shape, dtype, finite values) before it
  keeps anything, so a refused frame (a camera that changed resolution, a NaN) leaves the episode consistent.
- Timestamps are `frame_index / fps`; video frame i has PTS i in time base 1/fps, one frame per row.
- Stats (`data/stats.py` layout): per episode exact for parquet features (`compute_stats`); cameras per channel
  in [0, 1] accumulated while encoding (`ImageStatsAccumulator`, `data/video_encoder.py`). `meta/stats.json`
  is `aggregate_stats` of the episodes (count-weighted; quantiles approximate, as in LeRobot).
"""
from __future__ import annotations

import concurrent.futures
import fcntl
import json
import logging
import os
import queue
import shutil
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd
import pyarrow as pa

from vqbet_ros import constants
from vqbet_ros.data import lerobot_layout as layout
from vqbet_ros.data.atomic_files import atomic_write_bytes, atomic_write_table, describe_os_error, move_into_place
from vqbet_ros.data.lerobot_reader import read_info
from vqbet_ros.data.stats import aggregate_stats, compute_stats
from vqbet_ros.data.video_encoder import CODEC_NAMES, CameraEncoder, VideoEncoding

logger = logging.getLogger(__name__)

DATA_FILES_SIZE_MB = 100
VIDEO_FILES_SIZE_MB = 200
PARTIAL_DIR = ".partial"
LOCK_FILE = ".writer.lock"
DEFAULT_FEATURES = {
    constants.TIMESTAMP: {"dtype": "float32", "shape": [1], "names": None},
    constants.FRAME_INDEX: {"dtype": "int64", "shape": [1], "names": None},
    constants.EPISODE_INDEX: {"dtype": "int64", "shape": [1], "names": None},
    constants.INDEX: {"dtype": "int64", "shape": [1], "names": None},
    constants.TASK_INDEX: {"dtype": "int64", "shape": [1], "names": None},
}


class WriterError(RuntimeError):
    """Saving failed (disk full, unwritable root, encoder failure); saved episodes are intact."""


class WriterOverloadedError(WriterError):
    """The encode queue stayed full for `put_timeout_s`: encoding cannot keep up with the frame rate."""


class DatasetLockedError(WriterError):
    """Another writer (a second recorder, `vqbet-convert`) holds the dataset root."""


class RootLock:
    """Exclusive lock on a dataset root (`flock` on `<root>/.writer.lock`): one writer per dataset.

    Taken before anything is written, so two processes can never both create or append to one root (even a
    fresh one). The kernel releases it when the holder dies, so a crash never leaves a stale lock.
    """

    def __init__(self, root: str | Path):
        self.root = Path(root)
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.root / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as err:
            raise WriterError(describe_os_error(err, f"locking dataset root `{self.root}`")) from err
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise DatasetLockedError(
                f"`{self.root}` is being written by another process or writer (lock `{LOCK_FILE}` held, e.g. a "
                "second recorder or vqbet-convert); stop it or record into another root"
            ) from None
        self._fd: int | None = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


@dataclass(frozen=True)
class SavedEpisode:
    """What `save_episode`'s Future resolves to, once the episode is on disk."""

    episode_index: int
    length: int
    data_path: Path
    video_paths: dict[str, Path] = field(default_factory=dict)


@dataclass
class _Episode:
    seq: int
    task: str
    lowdim: dict[str, list[np.ndarray]]
    video_futures: dict[str, concurrent.futures.Future] = field(default_factory=dict)
    length: int = 0


class LeRobotWriter:
    """Appends episodes to one LeRobotDataset v3.0 root; see the module docstring for the guarantees.

    Use `create`, `open` or `open_or_create`. Not thread-safe: one thread calls start/add/save/discard; the
    workers are internal. `max_queue_frames` (default 10 s of frames) bounds the frames per camera waiting for
    the encoder; `put_timeout_s` (default None = wait) is how long `add_frame` may wait for room.
    `features` maps dataset keys to {"dtype", "shape", "names"}; cameras have dtype "video" and shape
    [H, W, 3]; the five default columns (timestamp, indices) are added by the writer.
    """

    def __init__(self, root: Path, info: dict, video: VideoEncoding, max_queue_frames: int,
                 put_timeout_s: float | None, lock: RootLock, own_lock: bool):
        self.root = root
        self.info = info
        self.fps = int(info["fps"])
        self.features: dict[str, dict] = info["features"]
        self.video = video
        self.put_timeout_s = put_timeout_s
        self.video_keys = [k for k, f in self.features.items() if f["dtype"] == "video"]
        self.lowdim_keys = [k for k, f in self.features.items() if f["dtype"] != "video" and k not in DEFAULT_FEATURES]
        self._root_lock, self._own_lock = lock, own_lock
        self._episodes_rows: list[dict] = []
        self._episode_stats: list[dict[str, dict[str, np.ndarray]]] = []
        self._tasks: dict[str, int] = {}
        self._recover()
        self._current: _Episode | None = None
        self._seq = 0
        self._pending = 0
        self._pending_lock = threading.Lock()
        self._closed = False
        self._encoders = {
            key: CameraEncoder(key, tuple(self.features[key]["shape"]), self.fps, video, max_queue_frames)
            for key in self.video_keys
        }
        for encoder in self._encoders.values():
            encoder.start()
        self._commit_queue: queue.Queue = queue.Queue()
        self._committer = threading.Thread(target=self._commit_loop, name="lerobot-commit", daemon=True)
        self._committer.start()

    # ------------------------------------------------------------------------------------------ construction
    @classmethod
    def create(
        cls,
        root: str | Path,
        *,
        fps: int,
        features: Mapping[str, Mapping[str, Any]],
        robot_type: str | None = None,
        video: VideoEncoding | None = None,
        max_queue_frames: int | None = None,
        put_timeout_s: float | None = None,
        lock: RootLock | None = None,
    ) -> "LeRobotWriter":
        """Start a new dataset at `root` (which must not hold one yet). `lock`: a `RootLock` the caller already
        holds on `root` (and keeps); without one the writer takes its own and releases it in `close`."""
        root = Path(root)
        if not isinstance(fps, int) or fps <= 0:
            raise ValueError(f"`fps` is {fps!r}; expected a positive integer (LeRobot stores fps as int)")
        all_features = {**DEFAULT_FEATURES, **_check_features(features)}
        info = {
            "codebase_version": layout.VERSION,
            "robot_type": robot_type,
            "total_episodes": 0,
            "total_frames": 0,
            "total_tasks": 0,
            "chunks_size": layout.CHUNKS_SIZE,
            "data_files_size_in_mb": DATA_FILES_SIZE_MB,
            "video_files_size_in_mb": VIDEO_FILES_SIZE_MB,
            "fps": fps,
            "splits": {},
            "data_path": layout.DATA_PATH,
            "video_path": layout.VIDEO_PATH if any(f["dtype"] == "video" for f in all_features.values()) else None,
            "features": all_features,
        }
        own_lock = lock is None
        lock = lock or RootLock(root)
        try:
            if layout.info_path(root).exists():
                raise FileExistsError(f"`{root}` already holds a dataset (meta/info.json); use open() to append")
            try:
                atomic_write_bytes(layout.info_path(root), json.dumps(info, indent=4).encode())
            except OSError as err:
                raise WriterError(describe_os_error(err, f"creating dataset root `{root}`")) from err
            return cls(root, info, video or VideoEncoding(), max_queue_frames or 10 * fps, put_timeout_s, lock,
                       own_lock)
        except BaseException:
            if own_lock:
                lock.release()
            raise

    @classmethod
    def open(
        cls,
        root: str | Path,
        *,
        video: VideoEncoding | None = None,
        max_queue_frames: int | None = None,
        put_timeout_s: float | None = None,
        lock: RootLock | None = None,
    ) -> "LeRobotWriter":
        """Open an existing dataset to append; leftovers of an interrupted save are removed first. `lock` as in
        `create`."""
        root = Path(root)
        info_path = layout.info_path(root)
        if not info_path.is_file():
            raise FileNotFoundError(f"`{info_path}` does not exist; use create() for a new dataset")
        own_lock = lock is None
        lock = lock or RootLock(root)
        try:
            info = read_info(info_path)
            if info.get("codebase_version") != layout.VERSION:
                raise ValueError(
                    f"`{info_path}`: codebase_version {info.get('codebase_version')!r}; this writer appends to "
                    f"{layout.VERSION} only. Record into a new root, or convert the dataset with LeRobot first"
                )
            return cls(root, info, video or VideoEncoding(), max_queue_frames or 10 * int(info["fps"]),
                       put_timeout_s, lock, own_lock)
        except BaseException:
            if own_lock:
                lock.release()
            raise

    @classmethod
    def open_or_create(
        cls,
        root: str | Path,
        *,
        fps: int,
        features: Mapping[str, Mapping[str, Any]],
        robot_type: str | None = None,
        **kwargs,
    ) -> "LeRobotWriter":
        """Append to `root` if it holds a dataset with the same fps and features, else create it."""
        root = Path(root)
        if not layout.info_path(root).is_file():
            return cls.create(root, fps=fps, features=features, robot_type=robot_type, **kwargs)
        writer = cls.open(root, **kwargs)
        try:
            writer.check_compatible(fps, _check_features(features))
        except ValueError:
            writer.close()
            raise
        return writer

    def check_compatible(self, fps: int, features: Mapping[str, Mapping[str, Any]]) -> None:
        """ValueError unless frames of `features` at `fps` may be appended: the same fps, the same feature keys,
        and every property (`dtype`, `shape`, `names`) a requested feature gives equal to the dataset's. A
        property left out is not compared (the recorder learns camera shapes from the first frames, and checks
        them per frame)."""
        where = f"`{self.root}/meta/info.json`"
        if fps != self.fps:
            raise ValueError(f"{where} has fps {self.fps}, requested {fps}; use the dataset's fps or a new root")
        existing = {k: v for k, v in self.features.items() if k not in DEFAULT_FEATURES}
        if sorted(existing) != sorted(features):
            raise ValueError(
                f"{where} has features {sorted(existing)}, requested {sorted(features)}; record into a new root"
            )
        for key, spec in features.items():
            have = existing[key]
            for name in ("dtype", "shape", "names"):
                if name in spec and have.get(name) != spec[name]:
                    raise ValueError(
                        f"{where}: feature `{key}` has {name} {have.get(name)!r}, requested {spec.get(name)!r}; "
                        "record into a new root or match the existing dataset"
                    )

    # -------------------------------------------------------------------------------------------- recovery
    def _recover(self) -> None:
        """Load committed episodes; delete everything an interrupted save left behind; repair derived meta."""
        frames = [pd.read_parquet(p) for p in layout.episode_files(self.root)]
        table = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
        rows = table.sort_values("episode_index").to_dict("records") if len(table) else []
        self._episodes_rows = [{k: _plain(v) for k, v in r.items()} for r in rows]
        for i, row in enumerate(self._episodes_rows):
            if row["episode_index"] != i:
                raise ValueError(
                    f"`{self.root / layout.EPISODES_DIR}`: episode indices are not 0..{len(rows) - 1} (found {row['episode_index']} at "
                    f"position {i}); the dataset was edited by hand. Repair it or record into a new root"
                )
        self._episode_stats = [_row_stats(r) for r in self._episodes_rows]
        tasks_path = self.root / "meta" / "tasks.parquet"
        if tasks_path.is_file():
            tasks = pd.read_parquet(tasks_path)
            names = tasks["task"] if "task" in tasks.columns else tasks.index
            self._tasks = {str(t): int(i) for t, i in zip(names, tasks["task_index"])}

        keep: set[Path] = set()
        for row in self._episodes_rows:
            keep.add(self._data_path(row["data/chunk_index"], row["data/file_index"]))
            for key in self.video_keys:
                keep.add(self._video_path(key, row[f"videos/{key}/chunk_index"], row[f"videos/{key}/file_index"]))
        missing = sorted(str(p) for p in keep if not p.is_file())
        if missing:
            raise FileNotFoundError(
                f"`{self.root}`: meta/episodes references missing file(s) {missing[:5]}; the dataset was damaged "
                "outside the writer (files deleted). Restore them or record into a new root"
            )
        removed = []
        partial = self.root / PARTIAL_DIR
        if partial.exists():
            removed.append(str(partial))
            shutil.rmtree(partial)
        for pattern in ("data/**/*.parquet", "videos/**/*.mp4"):
            for path in self.root.glob(pattern):
                if path not in keep:
                    removed.append(str(path))
                    path.unlink()
        for path in self.root.rglob("*.tmp"):
            removed.append(str(path))
            path.unlink()
        if removed:
            logger.warning("`%s`: removed leftovers of an interrupted save: %s", self.root, removed)
        self._write_info_and_stats()
        if self._episodes_rows:
            logger.info("`%s`: appending after %d saved episodes (%d frames)", self.root,
                        len(self._episodes_rows), self.info["total_frames"])

    # ------------------------------------------------------------------------------------------- recording
    @property
    def num_episodes(self) -> int:
        """Episodes committed to disk so far."""
        return len(self._episodes_rows)

    @property
    def episode_open(self) -> bool:
        return self._current is not None

    def backlog(self) -> dict[str, int]:
        """Frames queued per camera but not yet encoded, plus episodes waiting to be committed (`commit`)."""
        out = {key: enc.queue.qsize() for key, enc in self._encoders.items()}
        with self._pending_lock:
            out["commit"] = self._pending
        return out

    def start_episode(self, task: str) -> None:
        if self._closed:
            raise RuntimeError("the writer is closed")
        if self._current is not None:
            raise RuntimeError("an episode is already open; save_episode() or discard_episode() it first")
        if not isinstance(task, str) or not task:
            raise ValueError(f"`task` is {task!r}; expected a non-empty string describing the episode")
        self._seq += 1
        self._current = _Episode(self._seq, task, {k: [] for k in self.lowdim_keys})
        for key, encoder in self._encoders.items():
            path = self.root / PARTIAL_DIR / f"ep{self._seq:06d}" / f"{key}.mp4"
            self._put(encoder, ("open", path))

    def add_frame(self, frame: Mapping[str, np.ndarray]) -> None:
        """Append one frame (every feature, no defaults) to the open episode; arrays are copied.

        The whole frame is checked first (keys, shapes, dtypes, finite values): a refused frame raises
        ValueError naming every bad feature and leaves the episode exactly as it was."""
        episode = self._current
        if episode is None:
            raise RuntimeError("no episode is open; call start_episode() first")
        values, problems = self._check_frame(frame)
        if problems:
            raise ValueError(f"frame {episode.length} refused, nothing of it was added: {'; '.join(problems)}")
        try:
            for key in self.video_keys:
                self._put(self._encoders[key], ("frame", values[key]))
        except WriterOverloadedError as err:
            # Cameras would now disagree on the frame count: the episode cannot be saved consistently.
            self.discard_episode()
            raise WriterOverloadedError(f"{err}. The open episode was discarded") from None
        for key in self.lowdim_keys:
            episode.lowdim[key].append(values[key])
        episode.length += 1

    def _check_frame(self, frame: Mapping[str, np.ndarray]) -> tuple[dict[str, np.ndarray], list[str]]:
        """(copies of the values in the dataset's dtype and shape, problems naming the feature)."""
        expected = set(self.lowdim_keys) | set(self.video_keys)
        if set(frame) != expected:
            return {}, [f"frame keys {sorted(frame)} do not match the dataset features {sorted(expected)} "
                        f"(missing {sorted(expected - set(frame))}, unknown {sorted(set(frame) - expected)})"]
        values, problems = {}, []
        for key in self.lowdim_keys:
            dtype, shape = self.features[key]["dtype"], tuple(self.features[key]["shape"])
            try:
                with np.errstate(over="ignore", invalid="ignore"):  # 1e39 -> float32 inf is refused below
                    value = np.array(frame[key], dtype=dtype)
            except (TypeError, ValueError, OverflowError) as err:
                problems.append(f"`{key}`: not convertible to {dtype} ({err})")
                continue
            if value.size != int(np.prod(shape)):
                problems.append(f"`{key}`: {value.size} values, the dataset expects {shape}")
            elif np.issubdtype(value.dtype, np.floating) and not np.isfinite(value).all():
                problems.append(f"`{key}`: non-finite value(s) {value.reshape(-1).tolist()[:8]} (as {dtype})")
            else:
                values[key] = value.reshape(shape)
        for key in self.video_keys:
            rgb, shape = np.asarray(frame[key]), tuple(self.features[key]["shape"])
            if rgb.shape != shape or rgb.dtype != np.uint8:
                problems.append(f"`{key}`: got {rgb.dtype} {rgb.shape}, expected uint8 {shape}; the camera's "
                                "resolution differs from the one the dataset was created with")
            else:
                values[key] = np.array(rgb, copy=True)
        return values, problems

    def save_episode(self, extras: Mapping[str, Any] | None = None) -> concurrent.futures.Future:
        """Close the open episode and queue it for saving; the Future resolves to `SavedEpisode` once it is on
        disk (or raises `WriterError`). `extras` are scalar per-episode metadata columns (int/float/str/bool)."""
        episode = self._current
        if episode is None:
            raise RuntimeError("no episode is open; call start_episode() first")
        if episode.length == 0:
            raise ValueError("the open episode has no frames; add frames or discard_episode() it")
        extras = dict(extras or {})
        reserved = [k for k in extras if k in _reserved_columns(self.video_keys) or k.startswith("stats/")]
        bad = [k for k, v in extras.items() if not isinstance(v, (int, float, str, bool, np.number))]
        if reserved or bad:
            raise ValueError(f"episode extras: reserved names {reserved}, non-scalar values for {bad}")
        for key, encoder in self._encoders.items():
            done: concurrent.futures.Future = concurrent.futures.Future()
            episode.video_futures[key] = done
            self._put(encoder, ("close", done), block_forever=True)
        result: concurrent.futures.Future = concurrent.futures.Future()
        with self._pending_lock:
            self._pending += 1
        self._commit_queue.put((episode, extras, result))
        self._current = None
        return result

    def discard_episode(self) -> int:
        """Drop the open episode (nothing of it reaches the dataset); returns its frame count."""
        episode = self._current
        if episode is None:
            return 0
        for encoder in self._encoders.values():  # each encoder deletes its own partial file
            self._put(encoder, ("abort",), block_forever=True)
        self._current = None
        return episode.length

    def flush(self, timeout: float | None = None) -> None:
        """Block until every queued episode is saved (or failed)."""
        done = threading.Event()
        self._commit_queue.put(("flush", done))
        if not done.wait(timeout):
            raise TimeoutError(f"episodes still saving after {timeout} s: backlog {self.backlog()}")

    def close(self) -> None:
        """Discard an open episode, wait for queued saves, stop the workers and release the root."""
        if self._closed:
            return
        self.discard_episode()
        self.flush()
        for encoder in self._encoders.values():
            encoder.queue.put(("stop",))
            encoder.join()
        self._commit_queue.put(("stop",))
        self._committer.join()
        try:  # the staging folder, empty once every save is done; left, it would read as an interrupted save
            (self.root / PARTIAL_DIR).rmdir()
        except OSError:  # absent, or it holds what a failed save left (open() reports and removes that)
            pass
        if self._own_lock:
            self._root_lock.release()
        self._closed = True

    def __enter__(self) -> "LeRobotWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _put(self, encoder: CameraEncoder, item: tuple, block_forever: bool = False) -> None:
        try:
            encoder.queue.put(item, timeout=None if block_forever else self.put_timeout_s)  # None: wait
        except queue.Full:
            raise WriterOverloadedError(
                f"camera `{encoder.key}`: {encoder.queue.maxsize} frames waiting to be encoded for "
                f"{self.put_timeout_s} s; encoding cannot keep up. Use a faster preset, `libx264`, fewer or "
                "smaller cameras, or a lower fps"
            ) from None

    # ---------------------------------------------------------------------------------------------- commit
    def _commit_loop(self) -> None:
        while True:
            item = self._commit_queue.get()
            if item[0] == "stop":
                return
            if item[0] == "flush":
                item[1].set()
                continue
            episode, extras, result = item
            try:
                result.set_result(self._commit(episode, extras))
            except BaseException as err:  # noqa: BLE001 - delivered to the caller through the future
                if isinstance(err, OSError):
                    err = WriterError(describe_os_error(err, f"saving an episode to `{self.root}`"))
                elif not isinstance(err, WriterError):
                    err = WriterError(f"saving an episode to `{self.root}` failed: {err!r}")
                logger.error("%s", err)
                shutil.rmtree(self.root / PARTIAL_DIR / f"ep{episode.seq:06d}", ignore_errors=True)
                result.set_exception(err)
            finally:
                with self._pending_lock:
                    self._pending -= 1

    def _commit(self, episode: _Episode, extras: dict) -> SavedEpisode:
        videos = {key: fut.result() for key, fut in episode.video_futures.items()}  # raises encoder errors
        for key, (_, frames, _) in videos.items():
            if frames != episode.length:
                raise WriterError(f"camera `{key}`: encoded {frames} frames for an episode of {episode.length}")
        episode_index = len(self._episodes_rows)
        start = self.info["total_frames"]
        length = episode.length
        chunk, file = self._next_file()
        task_index = self._tasks.get(episode.task)
        new_task = task_index is None
        if new_task:
            task_index = len(self._tasks)

        columns = {
            constants.TIMESTAMP: (np.arange(length) / self.fps).astype(np.float32),
            constants.FRAME_INDEX: np.arange(length, dtype=np.int64),
            constants.EPISODE_INDEX: np.full(length, episode_index, np.int64),
            constants.INDEX: np.arange(start, start + length, dtype=np.int64),
            constants.TASK_INDEX: np.full(length, task_index, np.int64),
        }
        for key in self.lowdim_keys:
            columns[key] = np.stack(episode.lowdim[key])
        stats = compute_stats(columns)  # parquet features, exact per episode (data/stats.py)
        for key, (_, _, image_stats) in videos.items():
            stats[key] = image_stats

        data_path = self._data_path(chunk, file)
        atomic_write_table(data_path, self._data_table(columns))
        video_paths = {}
        for key, (tmp_path, _, _) in videos.items():
            video_paths[key] = self._video_path(key, chunk, file)
            move_into_place(tmp_path, video_paths[key])
        shutil.rmtree(self.root / PARTIAL_DIR / f"ep{episode.seq:06d}", ignore_errors=True)
        if new_task:
            tasks = dict(self._tasks, **{episode.task: task_index})
            frame = pd.DataFrame({"task_index": list(tasks.values())}, index=pd.Index(list(tasks), name=None))
            atomic_write_bytes(self.root / "meta" / "tasks.parquet", frame.to_parquet())
            self._tasks = tasks

        row = {
            "episode_index": episode_index,
            "tasks": [episode.task],
            "length": length,
            "data/chunk_index": chunk,
            "data/file_index": file,
            "dataset_from_index": start,
            "dataset_to_index": start + length,
        }
        for key in self.video_keys:
            row.update({
                f"videos/{key}/chunk_index": chunk, f"videos/{key}/file_index": file,
                f"videos/{key}/from_timestamp": 0.0, f"videos/{key}/to_timestamp": length / self.fps,
            })
        meta_chunk, meta_file = divmod(episode_index // layout.CHUNKS_SIZE, layout.CHUNKS_SIZE)
        row["meta/episodes/chunk_index"], row["meta/episodes/file_index"] = meta_chunk, meta_file
        for key, feature_stats in stats.items():
            for name, value in feature_stats.items():
                row[f"stats/{key}/{name}"] = np.asarray(value).tolist()
        row.update({k: (v.item() if isinstance(v, np.generic) else v) for k, v in extras.items()})

        # Commit point: the episode exists once this file is renamed into place.
        block = [r for r in self._episodes_rows
                 if r["episode_index"] // layout.CHUNKS_SIZE == episode_index // layout.CHUNKS_SIZE]
        atomic_write_table(
            self.root / layout.EPISODES_PATH.format(chunk_index=meta_chunk, file_index=meta_file),
            _rows_to_table(block + [row]),
        )
        self._episodes_rows.append(row)
        self._episode_stats.append(stats)
        if videos and "info" not in self.features[self.video_keys[0]]:
            for key in self.video_keys:
                self.features[key]["info"] = self._video_info(key)
        try:
            self._write_info_and_stats()
        except OSError as err:
            raise WriterError(describe_os_error(
                err, f"episode {episode_index} is committed to meta/episodes, but meta/info.json and stats.json "
                "could not be updated (they are repaired when the dataset is next opened)")) from err
        logger.info("episode %d saved: %d frames, task %r", episode_index, length, episode.task)
        return SavedEpisode(episode_index, length, data_path, video_paths)

    def _data_table(self, columns: dict[str, np.ndarray]) -> pa.Table:
        arrays, names = [], []
        for key, values in columns.items():
            shape = self.features[key]["shape"]
            if list(shape) == [1]:
                arrays.append(pa.array(values.reshape(-1)))
            elif len(shape) == 1:
                flat = pa.array(values.reshape(-1))
                arrays.append(pa.FixedSizeListArray.from_arrays(flat, shape[0]))
            else:
                raise ValueError(f"feature `{key}`: shape {shape} is not supported by this writer (1-D only)")
            names.append(key)
        return pa.Table.from_arrays(arrays, names=names)

    def _video_info(self, key: str) -> dict:
        h, w, c = self.features[key]["shape"]
        return {
            "video.height": h, "video.width": w, "video.codec": CODEC_NAMES[self.video.codec],
            "video.pix_fmt": self.video.pix_fmt, "video.is_depth_map": False, "video.fps": self.fps,
            "video.channels": c, "has_audio": False,
        }

    def _write_info_and_stats(self) -> None:
        n = len(self._episodes_rows)
        info = dict(self.info)
        info["total_episodes"] = n
        info["total_frames"] = int(sum(r["length"] for r in self._episodes_rows))
        info["total_tasks"] = len(self._tasks)
        info["splits"] = {"train": f"0:{n}"} if n else {}
        info["features"] = self.features
        if info != self.info or not layout.info_path(self.root).is_file():
            atomic_write_bytes(layout.info_path(self.root), json.dumps(info, indent=4).encode())
            self.info = info
        if self._episode_stats:
            stats = _stats_to_lists(aggregate_stats(self._episode_stats))
            atomic_write_bytes(self.root / "meta" / "stats.json", json.dumps(stats, indent=4).encode())

    def _next_file(self) -> tuple[int, int]:
        if not self._episodes_rows:
            return 0, 0
        last = self._episodes_rows[-1]
        chunk, file = int(last["data/chunk_index"]), int(last["data/file_index"]) + 1
        return (chunk + 1, 0) if file >= layout.CHUNKS_SIZE else (chunk, file)

    def _data_path(self, chunk: int, file: int) -> Path:
        return self.root / layout.DATA_PATH.format(chunk_index=int(chunk), file_index=int(file))

    def _video_path(self, key: str, chunk: int, file: int) -> Path:
        return self.root / layout.VIDEO_PATH.format(video_key=key, chunk_index=int(chunk), file_index=int(file))


def _rows_to_table(rows: list[dict]) -> pa.Table:
    """Rows -> table over the union of their keys (an episode without an extra gets null there)."""
    names: dict[str, None] = {}
    for row in rows:
        names.update(dict.fromkeys(row))
    return pa.table({name: pa.array([row.get(name) for row in rows]) for name in names})


def _reserved_columns(video_keys: list[str]) -> set[str]:
    cols = {"episode_index", "tasks", "length", "data/chunk_index", "data/file_index", "dataset_from_index",
            "dataset_to_index", "meta/episodes/chunk_index", "meta/episodes/file_index"}
    for key in video_keys:
        cols |= {f"videos/{key}/{n}" for n in ("chunk_index", "file_index", "from_timestamp", "to_timestamp")}
    return cols


def _check_features(features: Mapping[str, Mapping[str, Any]]) -> dict[str, dict]:
    """Validate user features; returns plain dicts with list shapes."""
    out = {}
    for key, spec in features.items():
        if key in DEFAULT_FEATURES:
            raise ValueError(f"feature `{key}` is written by the writer itself; leave it out of `features`")
        dtype, shape = spec.get("dtype"), list(spec.get("shape") or [])
        names = spec.get("names")
        if dtype == "video":
            if len(shape) != 3 or shape[2] != 3:
                raise ValueError(f"feature `{key}`: video shape {shape}; expected [height, width, 3]")
            names = names or ["height", "width", "channels"]
        elif dtype in ("float32", "float64", "int64", "int32", "bool"):
            if len(shape) != 1 or shape[0] < 1:
                raise ValueError(f"feature `{key}`: shape {shape}; expected [D] with D >= 1")
            if names is not None and len(names) != shape[0]:
                raise ValueError(f"feature `{key}`: {len(names)} names for shape {shape}")
        else:
            raise ValueError(f"feature `{key}`: dtype {dtype!r}; expected 'video' or a numeric dtype such as float32")
        if names is not None and any("/" in str(n) for n in names):
            raise ValueError(f"feature `{key}`: names may not contain '/' (LeRobot rule): {names}")
        out[key] = {"dtype": dtype, "shape": shape, "names": list(names) if names is not None else None}
    return out


def _stats_to_lists(stats: dict[str, dict[str, np.ndarray]]) -> dict:
    return {k: {n: np.asarray(v).tolist() for n, v in s.items()} for k, s in stats.items()}


def _row_stats(row: dict) -> dict[str, dict[str, np.ndarray]]:
    out: dict[str, dict[str, np.ndarray]] = {}
    for column, value in row.items():
        if column.startswith("stats/"):
            key, name = column[len("stats/"):].rsplit("/", 1)
            out.setdefault(key, {})[name] = np.asarray(value)
    return out


def _plain(value):
    """pandas/numpy cell -> plain Python (nested object arrays -> nested lists)."""
    if isinstance(value, np.ndarray):
        return [_plain(v) for v in value] if value.dtype == object else value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value
