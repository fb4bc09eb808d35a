"""The recorder's episodes -> a LeRobotDataset v3.0: `LeRobotWriter` behind the recorder's `EpisodeSink`
protocol (`runtime/recorder.py`). The recorder node builds it from its parameters and hands it to the recorder.

- The dataset root is locked (`RootLock`) from construction to `close`, so a second recorder on the same root,
  even a fresh one, is refused at configure.
- An existing dataset is opened at construction, so leftovers of a crash are cleaned up at configure time, and
  it must take the recorder's streams at its fps (`LeRobotWriter.check_compatible`; camera and low-dim shapes
  are the recorder's to check, per frame). A new dataset is created at the first episode, once the shapes of
  the streams' values are known.
"""
from __future__ import annotations

import concurrent.futures
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from vqbet_ros import constants
from vqbet_ros.config_io import described
from vqbet_ros.data import lerobot_layout as layout
from vqbet_ros.data.lerobot_writer import LeRobotWriter, RootLock, WriterError
from vqbet_ros.data.video_encoder import VideoEncoding

# When the encode queue (max_queue_s of frames) is full, waiting longer only delays the failure while the
# recorder's sampling timer holds its services off (a slow encoder never catches up): fail the episode after
# this long.
PUT_TIMEOUT_S = 0.5


@dataclass(frozen=True)
class LeRobotSinkConfig:
    """Where and how the recorder's dataset is written; built from the recorder node's parameters
    (config/recorder.yaml documents them).

    Args:
        dataset_name / root: the dataset directory is `root/dataset_name` (LeRobot's `$HF_LEROBOT_HOME/<repo_id>`).
        robot_type: free text stored in info.json.
        video_codec / video_crf / video_preset / video_gop / encoder_threads: see `VideoEncoding`.
        max_queue_s: seconds of frames per camera that may wait for the encoder before recording stops with
            an error (memory bound: 640x480 RGB is 0.9 MB a frame).
    """

    dataset_name: str = described(description="dataset folder under root, e.g. `pick_cube` or `user/pick_cube` "
                                              "(required)")
    root: str = described("~/.cache/huggingface/lerobot",
                          "folder holding datasets (LeRobot's HF_LEROBOT_HOME default)")
    robot_type: str = described("", "free text stored in meta/info.json")
    video_codec: str = described("libsvtav1", "libsvtav1 (AV1, LeRobot default) or libx264 (H.264, less CPU)")
    video_crf: int = described(30, "constant rate factor (quality; lower = better, bigger)")
    video_preset: str = described("", "encoder preset: svtav1 -1..13 (higher = faster), x264 ultrafast..veryslow; "
                                      "empty = the codec's real-time preset")
    video_gop: int = described(2, "keyframe interval in frames (LeRobot uses 2 for fast random access)")
    encoder_threads: int = described(1, "encoder threads per camera (0 = encoder default)")
    max_queue_s: float = described(10.0, "seconds of frames per camera that may wait for the encoder before "
                                         "recording stops with an error")

    def __post_init__(self):
        if not self.root:
            raise ValueError("`root` is empty; set it to the folder that holds your datasets")
        name = Path(self.dataset_name)
        if not self.dataset_name.strip() or name.is_absolute() or ".." in name.parts:
            raise ValueError(
                f"`dataset_name` is {self.dataset_name!r}; expected a relative name such as `pick_cube` or "
                "`user/pick_cube` (the dataset goes to `root/dataset_name`)"
            )
        # Written so that NaN fails (a comparison with NaN is false).
        if not 0 < self.max_queue_s <= 600:
            raise ValueError(f"`max_queue_s` is {self.max_queue_s}; expected seconds in (0, 600] (each second "
                             "of a 640x480 camera's queue may hold 27 MB)")
        self.video  # building the encoding settings checks the codec, its preset and the numbers

    @property
    def dataset_root(self) -> Path:
        return Path(self.root).expanduser() / self.dataset_name

    @property
    def video(self) -> VideoEncoding:
        return VideoEncoding(self.video_codec, self.video_crf, self.video_gop, self.video_preset,
                             self.encoder_threads)


class LeRobotSink:
    """`EpisodeSink` writing one LeRobot dataset (see the module docstring).

    Args:
        config: where and how to write.
        fps: the recorder's rate, the dataset's fps.
        streams: dataset key -> names of its values (state and action: the joint names), or None (cameras,
            keys under `observation.images.`, and low-dim inputs).
    """

    def __init__(self, config: LeRobotSinkConfig, fps: int, streams: Mapping[str, list[str] | None]):
        self.config = config
        self.fps = fps
        self.streams = dict(streams)
        self.name = str(config.dataset_root)
        self.writer: LeRobotWriter | None = None
        self._max_queue_frames = max(2, int(config.max_queue_s * fps))
        root = config.dataset_root
        _check_writable(root)
        self._lock = RootLock(root)  # held until close(), even before the first episode
        try:
            if layout.info_path(root).is_file():
                self.writer = LeRobotWriter.open(root, video=config.video, max_queue_frames=self._max_queue_frames,
                                                 put_timeout_s=PUT_TIMEOUT_S, lock=self._lock)
                try:
                    self.writer.check_compatible(fps, self._features({}))
                except ValueError as err:
                    raise ValueError(f"{err}; set the recorder's `fps`, streams and joint names to match it, or "
                                     "record into a new `dataset_name`") from None
        except BaseException:
            self.close()
            raise

    def _features(self, shapes: Mapping[str, tuple[int, ...]]) -> dict[str, dict]:
        """The dataset's features; a shape is given for the streams in `shapes` and for named vectors."""
        features = {}
        for key, names in self.streams.items():
            video = key.startswith(constants.IMAGES_PREFIX)
            feature: dict[str, Any] = {"dtype": "video" if video else "float32"}
            if names is not None:
                feature.update(shape=[len(names)], names=list(names))
            elif key in shapes:
                feature.update(shape=list(shapes[key]), names=["height", "width", "channels"] if video else None)
            features[key] = feature
        return features

    # ---- EpisodeSink ----------------------------------------------------------------------------------
    @property
    def num_episodes(self) -> int:
        return self.writer.num_episodes if self.writer is not None else 0

    def open(self, shapes: Mapping[str, tuple[int, ...]]) -> dict[str, tuple[int, ...]]:
        if self.writer is None:
            self.writer = LeRobotWriter.create(
                self.config.dataset_root, fps=self.fps, features=self._features(shapes),
                robot_type=self.config.robot_type or None, video=self.config.video,
                max_queue_frames=self._max_queue_frames, put_timeout_s=PUT_TIMEOUT_S, lock=self._lock,
            )
        return {key: tuple(self.writer.features[key]["shape"]) for key in self.streams}

    def start_episode(self, task: str) -> None:
        self.writer.start_episode(task)

    def add_frame(self, frame: Mapping[str, np.ndarray]) -> None:
        self.writer.add_frame(frame)

    def save_episode(self, extras: Mapping[str, Any]) -> concurrent.futures.Future:
        return self.writer.save_episode(extras)

    def discard_episode(self) -> None:
        self.writer.discard_episode()

    def close(self) -> None:
        """Wait for every save, release the dataset root."""
        if self.writer is not None:
            self.writer.close()
            self.writer = None
        self._lock.release()


def _check_writable(root: Path) -> None:
    try:
        root.mkdir(parents=True, exist_ok=True)
        probe = root / ".write_probe"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        raise WriterError(f"dataset root `{root}` is not writable ({err}); set `root` to a writable folder") from err
