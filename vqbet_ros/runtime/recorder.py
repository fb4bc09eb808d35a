"""Episode recording at a fixed rate (ROS-free): stream cache -> frames on an exact 1/fps grid -> a sink.

The recorder node hands this module arrays (`put`) and clock readings (`tick(now_s)`, `start(now_s)`, ...);
everything about time, staleness and episodes is decided here, so it is testable without ROS. The frames go
to an `EpisodeSink` the node builds: the LeRobot writer (`data/lerobot_sink.py`); tests keep them in memory.

Timing (docs/ros2.md §3, §6 problems 1 and 3):
- An episode started at `t0` has ticks `t_k = t0 + k / fps`. Tick k is sampled once the clock reaches
  `t_k + sample_delay_s` (so messages stamped just before `t_k` have had time to arrive), from each stream's
  latest value stamped <= `t_k`. Ticks are absolute: a late timer callback samples every tick it missed from
  the cache history instead of dropping or stretching frames, so a saved episode has exactly one row per tick
  and `timestamp = frame_index / fps` holds.
- Start is refused while any stream is stale at `now`, naming the stream and its topic.
- A stale stream during an episode does not drop the frame (that would break the grid): the frame keeps the
  stream's latest value (or the previous frame's, if none is old enough), is counted, logged once per stream
  and stored in the episode's metadata (`recorder/stale_frames`, `recorder/stale_by_stream`). Above
  `reject_stale_fraction` the episode is discarded at stop, with the reason.
- A non-finite value (NaN, inf, or beyond float32, the dataset's dtype) is never written: the frame keeps that
  stream's previous value and is counted exactly like a stale one (same metadata, same rejection threshold).
  Start is refused while a stream's latest value is non-finite.
- A stream whose values no longer fit the dataset (a camera that changed resolution, a low-dim input that
  changed size) ends the episode at the last good tick: the frames before it are saved and the report names
  the stream. Start is refused until the stream fits again. Frames reach the sink whole or not at all.
- Stop at `t_stop` keeps every tick <= `t_stop`; it completes once those ticks are sampled (<= sample_delay_s
  later), then the episode goes to the sink (the LeRobot writer saves it on its workers). `stop` returns at once.
"""
from __future__ import annotations

import concurrent.futures
import json
import logging
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Protocol

import numpy as np

from vqbet_ros import constants
from vqbet_ros.config_io import described
from vqbet_ros.runtime.stream_cache import StreamCache

logger = logging.getLogger(__name__)


class EpisodeSink(Protocol):
    """Where recorded episodes go, one open at a time; called from the recorder's thread only.

    Errors: `open` raises OSError, ValueError or RuntimeError with a message (the start is refused with it);
    `add_frame` raises ValueError for a frame it refuses (nothing of it kept, the episode still open) and
    RuntimeError when it failed and dropped its open episode (the LeRobot writer's encoder fell behind).
    """

    name: str  # what a person calls it in messages: the dataset's directory

    @property
    def num_episodes(self) -> int:
        """Episodes saved so far."""

    def open(self, shapes: Mapping[str, tuple[int, ...]]) -> dict[str, tuple[int, ...]]:
        """The shape of every stream's values in this dataset; a dataset that holds none yet takes `shapes`
        (the values of the first start). Called at every start."""

    def start_episode(self, task: str) -> None: ...

    def add_frame(self, frame: Mapping[str, np.ndarray]) -> None:
        """One value per stream, keyed by dataset key; all of it or nothing is kept."""

    def save_episode(self, extras: Mapping[str, Any]) -> concurrent.futures.Future:
        """Close the open episode with per-episode `extras`; the future's result has `episode_index` and
        `length` once it is saved."""

    def discard_episode(self) -> None: ...

    def close(self) -> None:
        """Wait for every save and release the dataset."""


@dataclass(frozen=True)
class RecorderConfig:
    """What the recorder samples, and how; the node builds it from its parameters (config/recorder.yaml
    documents them) along with the topics and the dataset, which are not the recorder's business.

    Args (most likely to change first: task, cameras, joint_names):
        fps: sampling and dataset rate, frames per second (LeRobot stores an int).
        task: task text stored with every episode (`meta/tasks.parquet`).
        cameras: camera names, each `observation.images.<name>`; none is fine (state-only datasets).
        low_dim: extra low-dimensional streams (object poses, keypoints), each `observation.<name>`, float32
            of the size of its first message.
        joint_names: joint order of `observation.state` (and of `action` unless `action_joint_names` is set).
        joint_max_age_s / action_max_age_s / image_max_age_s / low_dim_max_age_s: a stream older than this
            at a tick is stale.
            The teleop command may be published only on change; raise `action_max_age_s` for such leaders.
        sample_delay_s: how long after a tick it is sampled (transport latency allowance).
        reject_stale_fraction: discard an episode at stop when more than this fraction of its frames had a
            stale stream (1.0 keeps every episode; 0.0 rejects any stale frame).
    """

    task: str = described(description="task text stored with every episode (required)")
    joint_names: tuple[str, ...] = described(description="joints of observation.state, in order (required)")
    action_joint_names: tuple[str, ...] = described((), "joints of action, in order; empty = joint_names")
    cameras: tuple[str, ...] = ()  # the recorder node's `camera_names`
    low_dim: tuple[str, ...] = ()  # the recorder node's `low_dim_names`
    fps: int = described(30, "sampling rate and dataset fps")
    joint_max_age_s: float = described(0.1, "joint state (observation.state) older than this at a tick is stale")
    action_max_age_s: float = described(0.1, "teleop command older than this at a tick is stale")
    image_max_age_s: float = described(0.2, "camera frame older than this at a tick is stale")
    low_dim_max_age_s: float = described(0.1, "low-dim input older than this at a tick is stale")
    sample_delay_s: float = described(0.05, "a tick is sampled this long after its time (transport latency "
                                            "allowance)")
    reject_stale_fraction: float = described(1.0, "discard an episode at stop when more than this fraction of "
                                                   "frames had a stale stream (1.0 = keep all)")

    def __post_init__(self):
        if not self.task.strip():
            raise ValueError("`task` is empty; describe the task (it is stored with every episode)")
        if not isinstance(self.fps, int) or not 1 <= self.fps <= 1000:
            raise ValueError(f"`fps` is {self.fps!r}; expected an integer in 1..1000")
        if not self.joint_names:
            raise ValueError("`joint_names` is empty; list the joints of `observation.state` in order")
        if len(set(self.joint_names)) != len(self.joint_names):
            raise ValueError(f"`joint_names` has duplicates: {list(self.joint_names)}")
        for name in self.cameras:
            if not name or "/" in name or "." in name:
                raise ValueError(f"`camera_names` entry {name!r}: expected a short name without '/' or '.'")
        if len(set(self.cameras)) != len(self.cameras):
            raise ValueError(f"`camera_names` has duplicates: {list(self.cameras)}")
        for name in self.low_dim:
            if not name or "/" in name or "." in name or name in ("state", "images"):
                raise ValueError(f"`low_dim_names` entry {name!r}: expected a short name without '/' or '.', "
                                 "other than `state` and `images` (dataset key observation.<name>)")
        if len(set(self.low_dim)) != len(self.low_dim):
            raise ValueError(f"`low_dim_names` has duplicates: {list(self.low_dim)}")
        # Written so that NaN fails every check (a comparison with NaN is false).
        for name in ("joint_max_age_s", "action_max_age_s", "image_max_age_s", "low_dim_max_age_s"):
            if not 0 < getattr(self, name) < math.inf:
                raise ValueError(f"`{name}` is {getattr(self, name)}; expected a finite number of seconds > 0")
        if not 0 <= self.sample_delay_s < 1.0:
            raise ValueError(f"`sample_delay_s` is {self.sample_delay_s}; expected 0 <= value < 1 s")
        if not 0.0 <= self.reject_stale_fraction <= 1.0:
            raise ValueError(f"`reject_stale_fraction` is {self.reject_stale_fraction}; expected 0..1")

    @property
    def action_names(self) -> tuple[str, ...]:
        return self.action_joint_names or self.joint_names

    def streams(self) -> dict[str, list[str] | None]:
        """Dataset key of every stream -> the names of its values (state, action) or None (cameras, low-dim)."""
        streams = {constants.STATE: list(self.joint_names), constants.ACTION: list(self.action_names)}
        streams.update({constants.image_key(name): None for name in self.cameras})
        streams.update({constants.low_dim_key(name): None for name in self.low_dim})
        return streams

    def stream_labels(self, sources: Mapping[str, str] | None = None) -> dict[str, str]:
        """Dataset key -> how a person recognises the stream: "camera `front`", followed by its source in
        brackets when `sources` (dataset key -> topic) names one: "camera `front` (/cam/image_raw)"."""
        labels = {constants.STATE: "state", constants.ACTION: "action"}
        labels.update({constants.image_key(name): f"camera `{name}`" for name in self.cameras})
        labels.update({constants.low_dim_key(name): f"low-dim `{name}`" for name in self.low_dim})
        sources = sources or {}
        return {key: f"{label} ({sources[key]})" if key in sources else label for key, label in labels.items()}


@dataclass
class TickReport:
    """What one `tick` did, for the node to log."""

    frames_added: int = 0
    newly_stale: dict[str, str] = field(default_factory=dict)  # label -> stale/non-finite reason, first time
    finished: str | None = None  # message when an episode was handed to the sink (or discarded) this tick
    error: str | None = None  # recording failed (encoder overloaded: discarded) or a stream no longer fits the
    # dataset (the episode was ended at the last good tick)

    def add(self, name: str, message: str) -> None:
        """Append `message` to `finished` or `error` (several episodes can end in one tick)."""
        setattr(self, name, f"{getattr(self, name)}; {message}" if getattr(self, name) else message)


@dataclass
class _RecordingEpisode:
    t0_s: float
    last: dict[str, Any]  # per stream, the last value written (start's values before the first frame)
    frames: int = 0
    stale_frames: int = 0  # frames with a stale or non-finite stream
    stale_by_stream: dict[str, int] = field(default_factory=dict)
    stop_at_s: float | None = None
    in_sink: bool = False  # the sink's open episode is this one (one at a time, in order)


class EpisodeRecorder:
    """Cache + grid sampler for one dataset, which `sink` holds. Not thread-safe except `put` (call the rest
    from one thread, e.g. one mutually exclusive callback group).

    Args:
        config: the recorder config.
        sink: where the episodes go; the recorder closes it in `close`.
        sources: dataset key -> where the stream comes from (its topic), for messages.
        on_saved: called (from the sink's worker, for the LeRobot writer) with (message, ok) when an episode
            is saved or fails.
    """

    def __init__(self, config: RecorderConfig, sink: EpisodeSink, sources: Mapping[str, str] | None = None,
                 on_saved: Callable[[str, bool], None] | None = None):
        self.config = config
        self.sink = sink
        self.labels = config.stream_labels(sources)
        self.period_s = 1.0 / config.fps
        # History must cover sample_delay_s plus a late timer: 1000 joint messages (5 s at 200 Hz) and 2 s of
        # camera frames (55 MB per 640x480 camera at 30 fps; values are shared, never copied).
        ages = {constants.STATE: config.joint_max_age_s, constants.ACTION: config.action_max_age_s}
        ages.update({constants.image_key(name): config.image_max_age_s for name in config.cameras})
        low_dim_keys = [constants.low_dim_key(name) for name in config.low_dim]
        ages.update({key: config.low_dim_max_age_s for key in low_dim_keys})
        vectors = [constants.STATE, constants.ACTION, *low_dim_keys]
        depth = {key: (1000 if key in vectors else max(2 * config.fps, 8)) for key in ages}
        self.cache = StreamCache(ages, depth=depth)
        self._on_saved = on_saved or (lambda message, ok: None)
        self._open: _RecordingEpisode | None = None  # recording, no stop yet
        self._finishing: list[_RecordingEpisode] = []  # stopped, ticks up to stop_at_s not all sampled yet (in order)
        self.saved_futures: list[concurrent.futures.Future] = []
        self._shapes: dict[str, tuple[int, ...]] = {}  # the sink's, known from the first start

    # ----------------------------------------------------------------------------------------- recording
    @property
    def recording(self) -> bool:
        return self._open is not None

    def put(self, key: str, value: np.ndarray, stamp_s: float) -> None:
        """Store one converted message (any thread)."""
        self.cache.put(key, value, stamp_s)

    def start(self, now_s: float) -> tuple[bool, str]:
        """Start an episode at `now_s` if every stream is fresh; returns (ok, message).

        A start right after a stop is fine: the stopped episode's last ticks are sampled first."""
        if self._open is not None:
            return False, "an episode is already being recorded; stop or discard it first"
        snap = self.cache.sample(now_s)
        if not snap.ok:
            stale = "; ".join(f"{self.labels[k]}: {reason}" for k, reason in sorted(snap.stale.items()))
            return False, f"not started, stale stream(s): {stale}"
        non_finite = [self.labels[k] for k, s in sorted(snap.samples.items()) if not _finite(s.value)]
        if non_finite:
            return False, f"not started: the latest value of {', '.join(non_finite)} is not finite (NaN or inf)"
        try:
            self._shapes = self.sink.open({k: s.value.shape for k, s in snap.samples.items()})
            misfits = [self._misfit(k, s.value) for k, s in sorted(snap.samples.items())]
            if any(misfits):
                raise ValueError("; ".join(m for m in misfits if m))
        except (OSError, ValueError, RuntimeError) as err:
            return False, f"not started: {err}"
        self._open = _RecordingEpisode(t0_s=now_s, last={k: s.value for k, s in snap.samples.items()})
        number = self.sink.num_episodes + self._pending() + len(self._finishing)
        return True, f"episode {number} started ({self.config.task!r})"

    def _pending(self) -> int:
        return sum(1 for f in self.saved_futures if not f.done())

    def _misfit(self, key: str, value: np.ndarray) -> str | None:
        """Why `value` cannot be a frame of stream `key` in this dataset (None if it can), naming the stream."""
        want = self._shapes[key]
        if value.shape == want:
            return None
        if key.startswith(constants.IMAGES_PREFIX) and value.ndim == 3:
            return (f"{self.labels[key]} publishes {value.shape[1]}x{value.shape[0]} images but the dataset "
                    f"`{self.sink.name}` holds {want[1]}x{want[0]}; set the camera to that resolution "
                    "or record into a new `dataset_name`")
        return (f"{self.labels[key]} publishes {value.shape} values but the dataset `{self.sink.name}` "
                f"holds {want}; fix the publisher or record into a new `dataset_name`")

    def tick(self, now_s: float) -> TickReport:
        """Sample every tick that is due at `now_s`: first the stopped episodes' last ticks, then the open one."""
        report = TickReport()
        try:
            while self._finishing:
                episode = self._finishing[0]
                if not self._sample_due(episode, now_s, report):
                    return report  # its last ticks are not due yet; later episodes wait behind it
                self._finishing.pop(0)
                report.add("finished", self._finish(episode))
            if self._open is not None and self._sample_due(self._open, now_s, report):
                episode, self._open = self._open, None  # ended early: a stream no longer fits the dataset
                report.add("finished", self._finish(episode))
        except RuntimeError as err:  # the sink failed (encoder overloaded) and already dropped its open episode
            self._open, self._finishing = None, []
            report.error = f"recording stopped, episode discarded: {err}"
        return report

    def _sample_due(self, episode: _RecordingEpisode, now_s: float, report: TickReport) -> bool:
        """Add every due tick of `episode`; True once all its ticks (up to its stop) are in, or once it was
        ended early because a stream no longer fits the dataset (`report.error` says which)."""
        while True:
            t_k = episode.t0_s + episode.frames * self.period_s
            if episode.stop_at_s is not None and t_k > episode.stop_at_s + 1e-9:
                return True
            if t_k + self.config.sample_delay_s > now_s:
                return False
            frame, unusable = self._frame(episode, t_k)
            try:
                if frame is None:
                    raise ValueError("; ".join(unusable.values()))
                if not episode.in_sink:
                    self.sink.start_episode(self.config.task)
                    episode.in_sink = True
                self.sink.add_frame(frame)  # all or nothing: a refused frame leaves the episode as it was
            except ValueError as err:
                report.add("error", f"episode ended after {episode.frames} frames: {err}")
                episode.stop_at_s = t_k - self.period_s  # its last tick is the last good one
                return True
            episode.last.update(frame)
            if unusable:
                episode.stale_frames += 1
                for key, reason in unusable.items():
                    if key not in episode.stale_by_stream:
                        report.newly_stale[self.labels[key]] = f"{reason} at frame {episode.frames}"
                    episode.stale_by_stream[key] = episode.stale_by_stream.get(key, 0) + 1
            episode.frames += 1
            report.frames_added += 1

    def _frame(self, episode: _RecordingEpisode, t_k: float) -> tuple[dict[str, Any] | None, dict[str, str]]:
        """The frame of tick `t_k` and its unusable streams (key -> reason: stale or non-finite); the frame is
        None when a stream no longer fits the dataset (the reason then names it)."""
        # A tick is sampled after its time while messages keep arriving, later still when the timer is late:
        # messages newer than the tick by any amount are expected, so none counts as "stamped ahead" here. A
        # publisher clock ahead still makes ticks stale (its messages stamped <= a tick are old or missing),
        # and `start` refuses it by name.
        snap = self.cache.sample(t_k, now_s=math.inf)
        frame, unusable = {}, dict(snap.stale)
        for key in self.labels:
            sample = snap.samples.get(key)
            # No value stamped <= t_k any more (history too short): repeat this episode's previous value.
            value = sample.value if sample is not None else episode.last[key]
            misfit = self._misfit(key, value)
            if misfit:
                return None, {key: misfit}
            if not _finite(value):
                unusable[key] = "non-finite value (NaN, inf or beyond float32); the previous value is kept"
                value = episode.last[key]
            frame[key] = value
        return frame, unusable

    def stop(self, now_s: float) -> tuple[bool, str]:
        """Keep every tick <= `now_s`; the episode is handed to the sink once those are sampled."""
        episode = self._open
        if episode is None:
            return False, "no episode is being recorded"
        self._open = None
        episode.stop_at_s = now_s
        self._finishing.append(episode)
        expected = math.floor((now_s - episode.t0_s) * self.config.fps + 1e-9) + 1
        report = self.tick(now_s)
        if report.error:
            return False, "; ".join(m for m in (report.error, report.finished) if m)
        if episode not in self._finishing:
            return True, report.finished or "episode stopped"
        return True, f"stopping: {expected} frames; saving in the background"

    def discard(self) -> tuple[bool, str]:
        """Drop the open episode, or else the most recently stopped one that is not handed to the sink yet."""
        if self._open is not None:
            episode, self._open = self._open, None
        elif self._finishing:
            episode = self._finishing.pop()
        else:
            return False, "no episode is being recorded"
        if episode.in_sink:
            self.sink.discard_episode()
        return True, f"episode discarded ({episode.frames} frames)"

    @property
    def busy(self) -> bool:
        """An episode is open or still finishing."""
        return self._open is not None or bool(self._finishing)

    def finish_now(self, now_s: float | None = None) -> str | None:
        """Save every stopped episode with all its ticks (up to its stop, whatever has arrived) and an open one
        with the ticks up to `now_s` (deactivate / shutdown). Without `now_s` only sampled ticks are kept."""
        if self._open is not None and now_s is not None:
            self._open.stop_at_s = now_s
            self._finishing.append(self._open)
            self._open = None
        episodes = self._finishing + ([self._open] if self._open is not None else [])
        self._finishing, self._open = [], None
        messages = []
        for episode in episodes:
            report = TickReport()
            try:
                if episode.stop_at_s is not None:
                    self._sample_due(episode, episode.stop_at_s + self.config.sample_delay_s, report)
            except RuntimeError as err:  # as in `tick`
                messages.append(f"episode discarded: {err}")
                continue
            if report.error:
                messages.append(report.error)
            messages.append(self._finish(episode))
        return "; ".join(messages) if messages else None

    def _finish(self, episode: _RecordingEpisode) -> str:
        cfg = self.config
        if episode.frames == 0:
            if episode.in_sink:
                self.sink.discard_episode()
            return "episode had no frames; discarded"
        fraction = episode.stale_frames / episode.frames
        stale_text = ", ".join(f"{self.labels[k]}: {n}" for k, n in sorted(episode.stale_by_stream.items()))
        if episode.stale_frames and fraction > cfg.reject_stale_fraction:
            self.sink.discard_episode()
            return (f"episode rejected and discarded: {episode.stale_frames}/{episode.frames} frames had a stale "
                    f"or non-finite stream ({stale_text}), above reject_stale_fraction "
                    f"{cfg.reject_stale_fraction:g}")
        extras = {
            "recorder/stale_frames": episode.stale_frames,
            "recorder/stale_by_stream": json.dumps({k: n for k, n in sorted(episode.stale_by_stream.items())}),
            "recorder/start_stamp_s": episode.t0_s,
            "recorder/stop_stamp_s": episode.stop_at_s if episode.stop_at_s is not None else float("nan"),
        }
        future = self.sink.save_episode(extras)
        self.saved_futures = [f for f in self.saved_futures if not f.done()] + [future]
        stale = episode.stale_frames

        def report(done: concurrent.futures.Future) -> None:
            if done.exception() is not None:
                self._on_saved(f"episode NOT saved: {done.exception()}", False)
            else:
                saved = done.result()
                self._on_saved(f"episode {saved.episode_index} saved: {saved.length} frames "
                               f"({stale} with a stale stream) in `{self.sink.name}`", True)

        future.add_done_callback(report)
        warning = f" ({stale} frames with a stale stream: {stale_text})" if stale else ""
        return f"episode stopped: {episode.frames} frames{warning}; saving in the background"

    def close(self) -> None:
        """Finish stopped and open episodes, wait for every save, release the dataset (close the sink)."""
        message = self.finish_now()
        if message:
            logger.info("%s", message)
        self.sink.close()


def _finite(value: np.ndarray) -> bool:
    """Whether a stream value can be stored: images are uint8; vectors must be finite as float32, the dataset's
    dtype (1e39 is finite as float64 but inf once stored)."""
    if value.dtype == np.uint8:
        return True
    with np.errstate(over="ignore", invalid="ignore"):
        return bool(np.isfinite(np.asarray(value, dtype=np.float32)).all())
