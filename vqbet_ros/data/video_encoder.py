"""Camera streams to mp4, one encoder thread per camera (PyAV); used by `data/lerobot_writer.py`. And
`write_video`, a whole clip at once (rollout and demo videos).

- `VideoEncoding` is the codec configuration (LeRobot's defaults: AV1, crf 30, keyframe every 2 frames).
- `CameraEncoder` is a thread fed through a bounded queue of commands (`open` a file, `frame`, `close` with a
  Future, `abort`, `stop`). It writes one mp4 per episode, in order, off the caller's thread. Video frame i has
  PTS i in time base 1/fps, one frame per dataset row. `close` flushes and fsyncs the file and resolves its Future
  to (path, frame count, image stats); the file then belongs to the caller. A failed or aborted episode's file
  is deleted, and an error is delivered through the Future, never raised on the thread.
- `ImageStatsAccumulator` gives per-channel stats in [0, 1] while encoding (`data/stats.py` layout), from every
  frame strided to <= ~150 px, with 256-bin histograms (exact quantiles of the sampled pixels; the episode is
  never held in memory).
"""
from __future__ import annotations

import concurrent.futures
import logging
import os
import queue
import threading
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from vqbet_ros.data.stats import QUANTILES

logger = logging.getLogger(__name__)
# SVT-AV1 prints its whole configuration to stderr for every episode unless told otherwise; keep errors only
# (a user's own SVT_LOG wins).
os.environ.setdefault("SVT_LOG", "1")

_STAT_TARGET_PX = 150  # LeRobot strides images with a side >= 300 px down to ~150 px before stats
# encoder name -> codec name stored in info.json (`video.codec`)
CODEC_NAMES = {"libsvtav1": "av1", "libaom-av1": "av1", "libx264": "h264", "h264": "h264", "libx265": "hevc"}
# x264/x265 name their presets; SVT-AV1 numbers them (higher = faster)
_NAMED_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow")
_SVTAV1_PRESETS = range(-1, 14)
# preset "" = fast enough for 3 x 640x480 x 30 fps on 2 cores (bench/recorder_load.py)
_REALTIME_PRESETS = {"libsvtav1": "12", "libx264": "ultrafast", "libx265": "ultrafast"}


@dataclass(frozen=True)
class VideoEncoding:
    """How camera streams are encoded (PyAV).

    Args:
        codec: `libsvtav1` (AV1, LeRobot's default) or `libx264` (H.264: ~3x less CPU, larger files).
        crf: constant rate factor (LeRobot default 30 for AV1; 23 is x264's default).
        gop: keyframe interval in frames; LeRobot uses 2 so random access during training decodes <= 2 frames.
        preset: encoder speed preset: svtav1 -1 (slow)..13 (fast), x264/x265 `ultrafast`..`veryslow`; "" picks
            the codec's real-time preset (svtav1 12, x264 ultrafast: 3 x 640x480 x 30 fps on 2 cores,
            bench/recorder_load.py).
        threads: encoder threads per camera (svtav1 `lp`, x264 `threads`); 0 = encoder default.
    """

    codec: str = "libsvtav1"
    crf: int = 30
    gop: int = 2
    preset: str = ""
    threads: int = 1
    pix_fmt: str = "yuv420p"

    def __post_init__(self):
        if self.codec not in CODEC_NAMES:
            raise ValueError(f"`codec` is {self.codec!r}; expected one of {sorted(CODEC_NAMES)}")
        try:
            av.codec.Codec(self.codec, "w")
        except Exception:
            raise ValueError(f"`codec` {self.codec!r} is not available in this PyAV/FFmpeg build") from None
        if self.gop < 1 or self.crf < 0 or self.threads < 0:
            raise ValueError(f"`gop` ({self.gop}) must be >= 1, `crf` ({self.crf}) and `threads` >= 0")
        self._check_preset()

    def _check_preset(self) -> None:
        """Refuse a preset the codec would only reject when the first episode is saved."""
        preset = self.effective_preset
        if self.codec == "libsvtav1":
            ok = preset.lstrip("-").isdigit() and int(preset) in _SVTAV1_PRESETS
            expected = "an integer -1..13 (higher = faster), or \"\" for 12"
        elif self.codec in ("libx264", "libx265"):
            ok, expected = preset in _NAMED_PRESETS, f"one of {list(_NAMED_PRESETS)}, or \"\" for ultrafast"
        else:
            return
        if not ok:
            raise ValueError(f"`preset` {self.preset!r} does not suit codec {self.codec!r}: expected {expected}")

    @property
    def effective_preset(self) -> str:
        return self.preset or _REALTIME_PRESETS.get(self.codec, "")

    def stream_options(self) -> dict[str, str]:
        options = {"crf": str(self.crf), "g": str(self.gop)}
        if self.effective_preset:
            options["preset"] = self.effective_preset
        if self.codec == "libsvtav1" and self.threads:
            options["svtav1-params"] = f"lp={self.threads}"
        elif self.threads:
            options["threads"] = str(self.threads)
        return options


class ImageStatsAccumulator:
    """Per-channel image stats in [0, 1], accumulated frame by frame (no episode held in memory).

    Each frame is strided so its longer side is ~150 px (LeRobot's compute_stats sampling); per-channel
    sums and 256-bin histograms give exact mean/std/min/max/quantiles of those pixels.
    """

    def __init__(self):
        self.frames = 0
        self.hist = np.zeros((3, 256), np.int64)

    def add(self, rgb: np.ndarray) -> None:
        step = max(1, max(rgb.shape[:2]) // _STAT_TARGET_PX) if max(rgb.shape[:2]) >= 2 * _STAT_TARGET_PX else 1
        pixels = rgb[::step, ::step].reshape(-1, 3)
        for c in range(3):
            self.hist[c] += np.bincount(pixels[:, c], minlength=256)
        self.frames += 1

    def stats(self) -> dict[str, np.ndarray]:
        levels = np.arange(256) / 255.0
        n = self.hist.sum(axis=1)  # pixels per channel
        mean = (self.hist * levels).sum(axis=1) / n
        var = (self.hist * levels**2).sum(axis=1) / n - mean**2
        cdf = np.cumsum(self.hist, axis=1) / n[:, None]
        shape = (3, 1, 1)
        out = {
            "min": np.array([levels[np.nonzero(h)[0][0]] for h in self.hist]).reshape(shape),
            "max": np.array([levels[np.nonzero(h)[0][-1]] for h in self.hist]).reshape(shape),
            "mean": mean.reshape(shape),
            "std": np.sqrt(np.maximum(var, 0.0)).reshape(shape),
            "count": np.array([self.frames], np.int64),
        }
        for name, q in QUANTILES.items():  # lower quantile: first level whose cdf reaches q
            out[name] = np.array([levels[np.searchsorted(cdf[c], q)] for c in range(3)]).reshape(shape)
        return out


class CameraEncoder(threading.Thread):
    """Encodes one camera's frames to one mp4 per episode, in order, off the caller's thread."""

    def __init__(self, key: str, shape: tuple[int, int, int], fps: int, encoding: VideoEncoding, maxsize: int):
        super().__init__(name=f"encode:{key}", daemon=True)
        self.key, self.shape, self.fps, self.encoding = key, shape, fps, encoding
        self.queue: queue.Queue = queue.Queue(maxsize=maxsize)
        self._container = None
        self._stream = None
        self._path: Path | None = None
        self._frames = 0
        self._stats: ImageStatsAccumulator | None = None
        self._error: BaseException | None = None

    def run(self) -> None:
        while True:
            item = self.queue.get()
            kind = item[0]
            try:
                if kind == "stop":
                    return
                if kind == "open":
                    self._open(item[1])
                elif kind == "frame":
                    self._encode(item[1])
                elif kind == "close":
                    self._close(item[1])
                elif kind == "abort":
                    self._abort()
            finally:
                self.queue.task_done()

    def _open(self, path: Path) -> None:
        self._abort()
        self._path, self._frames, self._stats, self._error = path, 0, ImageStatsAccumulator(), None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._container = av.open(str(path), mode="w", format="mp4")
            stream = self._container.add_stream(self.encoding.codec, rate=self.fps)
            stream.width, stream.height = self.shape[1], self.shape[0]
            stream.pix_fmt = self.encoding.pix_fmt
            stream.time_base = Fraction(1, self.fps)
            stream.options = self.encoding.stream_options()
            self._stream = stream
        except BaseException as err:  # noqa: BLE001 - reported through the episode's future
            self._fail(err)

    def _encode(self, rgb: np.ndarray) -> None:
        if self._error is not None or self._container is None:
            return
        try:
            self._stats.add(rgb)
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts = self._frames  # PTS = frame_index in time base 1/fps
            frame.time_base = Fraction(1, self.fps)
            for packet in self._stream.encode(frame):
                self._container.mux(packet)
            self._frames += 1
        except BaseException as err:  # noqa: BLE001
            self._fail(err)

    def _close(self, done: concurrent.futures.Future) -> None:
        try:
            if self._error is None and self._container is not None:
                for packet in self._stream.encode():
                    self._container.mux(packet)
                self._container.close()
                self._container = None
                with open(self._path, "rb+") as f:
                    os.fsync(f.fileno())
            if self._error is not None:
                raise self._error
            done.set_result((self._path, self._frames, self._stats.stats()))
        except BaseException as err:  # noqa: BLE001
            self._abort()
            done.set_exception(err)
        finally:  # the finished file now belongs to the commit thread: forget it
            self._container, self._stream, self._error, self._path = None, None, None, None

    def _fail(self, err: BaseException) -> None:
        logger.error("camera `%s`: encoding %s failed: %s", self.key, self._path, err)
        self._error = err
        self._abort(keep_error=True)

    def _abort(self, keep_error: bool = False) -> None:
        if self._container is not None:
            try:
                self._container.close()
            except Exception:  # noqa: BLE001 - closing a broken container; the file is deleted anyway
                pass
        self._container, self._stream = None, None
        if self._path is not None:
            self._path.unlink(missing_ok=True)
            try:  # the episode's .partial folder goes with its last file
                self._path.parent.rmdir()
            except OSError:
                pass
            self._path = None
        if not keep_error:
            self._error = None


def write_video(frames: list[np.ndarray], path: str | Path, fps: float) -> None:
    """RGB frames (H, W, 3) uint8 to an H.264 mp4 at `path`, its folder created: a rollout's or a demo's video,
    held in memory whole (a recording goes through `CameraEncoder`)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=int(round(fps)))
        stream.height, stream.width = frames[0].shape[:2]
        stream.pix_fmt = "yuv420p"
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
