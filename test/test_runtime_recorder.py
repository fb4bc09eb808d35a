"""EpisodeRecorder without ROS: the 1/fps grid, late ticks, stale counting and rejection, stop/start order.

The recorder hands its episodes to an in-memory sink here (no video is encoded); the LeRobot sink is tested in
test_data_lerobot_sink.py, the whole recorder node in test_nodes_recorder.py.
"""
import concurrent.futures
import json
from dataclasses import dataclass, field
from types import SimpleNamespace

import numpy as np
import pytest

from vqbet_ros import constants
from vqbet_ros.runtime.recorder import EpisodeRecorder, RecorderConfig

FPS = 10
CAM = constants.image_key("cam")
SOURCES = {constants.STATE: "/joint_states", constants.ACTION: "/cmd", CAM: "/cam",
           constants.low_dim_key("pose"): "/pose"}


@dataclass
class Episode:
    task: str
    frames: list[dict[str, np.ndarray]] = field(default_factory=list)
    extras: dict = field(default_factory=dict)

    def column(self, key: str) -> np.ndarray:
        return np.stack([frame[key] for frame in self.frames])


class MemorySink:
    """`EpisodeSink` keeping what the recorder hands over in lists; refuses a frame of another shape, as the
    LeRobot writer does."""

    name = "memory"

    def __init__(self):
        self.shapes: dict | None = None
        self.episodes: list[Episode] = []  # saved
        self.current: Episode | None = None
        self.closed = False

    @property
    def num_episodes(self) -> int:
        return len(self.episodes)

    def open(self, shapes):
        if self.shapes is None:
            self.shapes = dict(shapes)
        return self.shapes

    def start_episode(self, task):
        assert self.current is None, "one episode at a time"
        self.current = Episode(task)

    def add_frame(self, frame):
        bad = [k for k, v in frame.items() if v.shape != self.shapes[k]]
        if bad:
            raise ValueError(f"frame refused: shapes of {bad}")
        self.current.frames.append({k: np.array(v) for k, v in frame.items()})

    def save_episode(self, extras):
        episode, self.current = self.current, None
        episode.extras = dict(extras)
        self.episodes.append(episode)
        future = concurrent.futures.Future()
        future.set_result(SimpleNamespace(episode_index=len(self.episodes) - 1, length=len(episode.frames)))
        return future

    def discard_episode(self):
        self.current = None

    def close(self):
        self.closed = True


def _config(**kw) -> RecorderConfig:
    base = dict(task="t", joint_names=("a",), cameras=("cam",), fps=FPS, sample_delay_s=0.0, joint_max_age_s=0.15,
                action_max_age_s=0.15, image_max_age_s=0.15)
    base.update(kw)
    return RecorderConfig(**base)


def _recorder(**kw) -> EpisodeRecorder:
    return EpisodeRecorder(_config(**kw), MemorySink(), SOURCES)


def _feed(rec: EpisodeRecorder, t: float, skip=()):
    """Every stream publishes value t (the image is flat grey t*10) stamped t, except those in `skip`."""
    if constants.STATE not in skip:
        rec.put(constants.STATE, np.array([t]), t)
    if constants.ACTION not in skip:
        rec.put(constants.ACTION, np.array([-t]), t)
    if CAM not in skip:
        rec.put(CAM, np.full((16, 16, 3), int(t * 10) % 256, np.uint8), t)


def _run(rec, t_from, t_to, step=0.05, skip_from=None, skip=()):
    """Publish every `step` s from t_from to t_to and tick the recorder at each instant."""
    for t in np.arange(t_from, t_to + 1e-9, step):
        _feed(rec, round(float(t), 6), skip if skip_from is not None and t >= skip_from else ())
        rec.tick(round(float(t), 6))


def test_frames_follow_the_grid_even_when_ticks_arrive_late():
    rec = _recorder()
    _run(rec, 0.0, 1.0)
    assert rec.start(1.0)[0]
    for t in np.arange(1.05, 2.0, 0.05):  # data arrives every 50 ms but the timer only fires at 1.95
        _feed(rec, round(float(t), 6))
    report = rec.tick(1.95)
    assert report.frames_added == 10  # ticks 1.0, 1.1, ..., 1.9 all sampled late from the history
    # Messages 0.95 s newer than tick 1.0 (> max age) are what a late timer finds, not a clock ahead: no frame
    # is stale.
    assert report.newly_stale == {}
    ok, message = rec.stop(1.95)
    assert ok and message == "episode stopped: 10 frames; saving in the background"
    rec.close()
    assert rec.sink.closed
    episode = rec.sink.episodes[0]
    # Tick k at 1.0 + k/10 takes the value stamped <= the tick: exactly that tick's value.
    np.testing.assert_allclose(episode.column(constants.STATE).ravel(), 1.0 + np.arange(10) / 10, atol=1e-6)
    assert episode.task == "t" and episode.extras["recorder/stale_frames"] == 0


def test_episode_saved_long_after_its_stop_has_no_stale_frames():
    """Deactivation saves the last ticks whenever it runs (a loaded machine): messages that arrived meanwhile,
    far newer than those ticks, do not make them stale."""
    rec = _recorder(sample_delay_s=0.2)
    _run(rec, 0.0, 1.0)
    rec.start(1.0)
    _run(rec, 1.05, 1.5)
    rec.stop(1.5)  # ticks 1.4 and 1.5 wait for the sample delay ...
    for t in np.arange(1.55, 2.2, 0.05):  # ... while the timer is starved and messages keep coming
        _feed(rec, round(float(t), 6))
    assert rec.finish_now() == "episode stopped: 6 frames; saving in the background"
    rec.close()
    episode = rec.sink.episodes[0]
    assert len(episode.frames) == 6 and episode.extras["recorder/stale_frames"] == 0


def test_publisher_clock_ahead_during_an_episode_makes_its_frames_stale():
    rec = _recorder()
    _run(rec, 0.0, 1.0)
    assert rec.start(1.0)[0]
    for t in np.arange(1.05, 2.0, 0.05):  # from here the state publisher's clock is 10 s ahead
        t = round(float(t), 6)
        _feed(rec, t, skip=(constants.STATE,))
        rec.put(constants.STATE, np.array([t]), t + 10.0)
        rec.tick(t)
    ok, message = rec.stop(1.95)
    assert ok and "with a stale stream: state (/joint_states):" in message
    rec.close()
    extras = rec.sink.episodes[0].extras
    assert json.loads(extras["recorder/stale_by_stream"]) == {constants.STATE: extras["recorder/stale_frames"]}
    assert extras["recorder/stale_frames"] >= 8  # every tick older than max age (0.15 s) past the last good one


def test_stop_keeps_ticks_up_to_stop_then_waits_for_sample_delay():
    rec = _recorder(sample_delay_s=0.2)
    _run(rec, 0.0, 1.0)
    rec.start(1.0)
    _run(rec, 1.05, 1.5)
    ok, message = rec.stop(1.5)
    assert ok and message.startswith("stopping: 6 frames")  # ticks 1.0..1.5; 1.4 and 1.5 not sampled yet
    ok, message = rec.start(1.52)  # a new episode may start while the last one finishes
    assert ok and message == "episode 1 started ('t')"
    _run(rec, 1.55, 2.0)
    rec.stop(2.0)
    rec.close()
    episodes = rec.sink.episodes
    assert [len(e.frames) for e in episodes] == [6, 5]
    assert episodes[1].extras["recorder/start_stamp_s"] == pytest.approx(1.52)


def test_start_refused_names_the_stale_stream():
    rec = _recorder()
    _run(rec, 0.0, 1.0, skip_from=0.5, skip=(CAM,))
    ok, message = rec.start(1.0)
    assert not ok and "camera `cam` (/cam): latest message is 0.550 s old" in message
    assert "state" not in message
    rec.close()


def test_labels_without_sources_name_the_stream_only():
    rec = EpisodeRecorder(_config(low_dim=("pose",)), MemorySink())
    assert rec.labels == {constants.STATE: "state", constants.ACTION: "action", CAM: "camera `cam`",
                          constants.low_dim_key("pose"): "low-dim `pose`"}


def test_stale_frames_are_counted_and_stored():
    rec = _recorder()
    _run(rec, 0.0, 1.0)
    rec.start(1.0)
    report_stale = {}
    for t in np.arange(1.05, 2.0 + 1e-9, 0.05):
        t = round(float(t), 6)
        _feed(rec, t, skip=(constants.ACTION,) if t > 1.3 else ())
        report_stale.update(rec.tick(t).newly_stale)
    rec.stop(2.0)
    rec.close()
    assert list(report_stale) == ["action (/cmd)"]
    episode = rec.sink.episodes[0]
    # Ticks 1.5..2.0 (6 of 11) see an action older than 0.15 s; the frame keeps the last value.
    assert len(episode.frames) == 11 and episode.extras["recorder/stale_frames"] == 6
    assert json.loads(episode.extras["recorder/stale_by_stream"]) == {constants.ACTION: 6}
    np.testing.assert_allclose(episode.column(constants.ACTION).ravel()[3:], -1.3, atol=1e-6)  # the last sent


def test_episode_above_stale_threshold_is_rejected():
    rec = _recorder(reject_stale_fraction=0.2)
    _run(rec, 0.0, 1.0)
    rec.start(1.0)
    _run(rec, 1.05, 2.0, skip_from=1.3, skip=(CAM,))
    ok, message = rec.stop(2.0)
    assert ok and "rejected" in message and "camera `cam`" in message
    rec.close()
    assert rec.sink.episodes == []


def test_discard_after_stop_drops_the_finishing_episode():
    rec = _recorder(sample_delay_s=0.3)
    _run(rec, 0.0, 1.0)
    rec.start(1.0)
    _run(rec, 1.05, 1.5)
    rec.stop(1.5)
    ok, message = rec.discard()
    assert ok and "discarded" in message
    _run(rec, 1.55, 2.0)
    rec.close()
    assert rec.sink.episodes == []


def test_non_finite_values_are_never_written_and_count_like_stale_frames():
    rec = _recorder()
    _run(rec, 0.0, 1.0)
    assert rec.start(1.0)[0]
    # Published at ticks 1.3, 1.4, 1.5: state NaN, inf, and a value beyond float32; action inf at 1.4 only.
    bad = {1.3: (np.nan, -1.3), 1.4: (np.inf, np.inf), 1.5: (1e39, -1.5)}
    reported = {}
    for t in np.arange(1.05, 2.0 + 1e-9, 0.05):
        t = round(float(t), 6)
        _feed(rec, t)
        if t in bad:
            rec.put(constants.STATE, np.array([bad[t][0]]), t)
            rec.put(constants.ACTION, np.array([bad[t][1]]), t)
        reported.update(rec.tick(t).newly_stale)
    ok, message = rec.stop(2.0)
    assert ok and "3 frames with a stale stream" in message
    rec.close()
    assert "non-finite" in reported["state (/joint_states)"]
    assert "non-finite" in reported["action (/cmd)"]
    episode = rec.sink.episodes[0]
    state, action = episode.column(constants.STATE).ravel(), episode.column(constants.ACTION).ravel()
    # The frame keeps the stream's previous value: tick 1.2's for state (1.3, 1.4, 1.5), tick 1.3's for action.
    np.testing.assert_allclose(state, [1.0, 1.1, 1.2, 1.2, 1.2, 1.2, 1.6, 1.7, 1.8, 1.9, 2.0], atol=1e-6)
    np.testing.assert_allclose(action[4], -1.3, atol=1e-6)
    assert episode.extras["recorder/stale_frames"] == 3
    assert json.loads(episode.extras["recorder/stale_by_stream"]) == {constants.ACTION: 1, constants.STATE: 3}


def test_episode_with_too_many_non_finite_frames_is_rejected_naming_the_stream():
    rec = _recorder(reject_stale_fraction=0.2)
    _run(rec, 0.0, 1.0)
    rec.start(1.0)
    for t in np.arange(1.05, 2.0 + 1e-9, 0.05):
        t = round(float(t), 6)
        _feed(rec, t)
        if t > 1.3:
            rec.put(constants.ACTION, np.array([np.nan]), t)
        rec.tick(t)
    ok, message = rec.stop(2.0)
    assert ok and "rejected" in message and "action (/cmd): 7" in message
    rec.close()
    assert rec.sink.episodes == []


def test_start_is_refused_while_a_latest_value_is_not_finite():
    rec = _recorder()
    _run(rec, 0.0, 1.0)
    rec.put(constants.STATE, np.array([np.nan]), 1.0)
    ok, message = rec.start(1.0)
    assert not ok and "state (/joint_states) is not finite" in message
    rec.close()
    assert rec.sink.shapes is None  # the sink was never opened: nothing was created


def test_start_is_refused_with_the_reason_the_sink_gives():
    class Unwritable(MemorySink):
        def open(self, shapes):
            raise OSError("disk full")

    rec = EpisodeRecorder(_config(), Unwritable(), SOURCES)
    _run(rec, 0.0, 1.0)
    assert rec.start(1.0) == (False, "not started: disk full")
    assert not rec.recording


def test_a_failing_sink_ends_the_recording_and_the_report_says_so():
    class Overloaded(MemorySink):
        def add_frame(self, frame):
            if len(self.current.frames) == 2:
                self.current = None  # the LeRobot writer drops its open episode when its encoder falls behind
                raise RuntimeError("encoder queue full")
            super().add_frame(frame)

    rec = EpisodeRecorder(_config(), Overloaded(), SOURCES)
    _run(rec, 0.0, 1.0)
    assert rec.start(1.0)[0]
    errors = []
    for t in np.arange(1.05, 1.5 + 1e-9, 0.05):
        _feed(rec, round(float(t), 6))
        errors += [e for e in [rec.tick(round(float(t), 6)).error] if e]
    assert errors == ["recording stopped, episode discarded: encoder queue full"]
    assert not rec.recording and rec.sink.episodes == []


def test_camera_resolution_change_ends_the_episode_and_keeps_every_good_frame():
    rec = _recorder(sample_delay_s=0.2)
    _run(rec, 0.0, 1.0)
    assert rec.start(1.0)[0]
    _run(rec, 1.05, 1.5)
    assert rec.stop(1.5)[0]  # stopped, its last ticks still to sample ...
    assert rec.start(1.5)[0]  # ... while the next episode records
    errors, finished = [], []
    for t in np.arange(1.55, 2.5 + 1e-9, 0.05):
        t = round(float(t), 6)
        _feed(rec, t)
        if t >= 1.8:  # the camera restarts at 32x32 (the stopped episode's last tick 1.5 is long sampled)
            rec.put(CAM, np.zeros((32, 32, 3), np.uint8), t)
        report = rec.tick(t)
        errors += [report.error] if report.error else []
        finished += [report.finished] if report.finished else []
    assert len(errors) == 1 and "camera `cam` (/cam) publishes 32x32 images" in errors[0]
    assert "the dataset `memory` holds 16x16" in errors[0] and "after 3 frames" in errors[0]
    assert not rec.recording
    ok, message = rec.start(2.5)
    assert not ok and "camera `cam` (/cam) publishes 32x32 images" in message
    _run(rec, 2.55, 3.0)  # the camera is back at 16x16
    assert rec.start(3.0)[0]
    _run(rec, 3.05, 3.3)
    rec.stop(3.3)
    rec.close()
    episodes = rec.sink.episodes
    assert [len(e.frames) for e in episodes] == [6, 3, 4]  # ticks 1.5..1.7 of the ended one are kept
    np.testing.assert_allclose(episodes[1].column(constants.STATE).ravel(), [1.5, 1.6, 1.7], atol=1e-6)
    assert all(e.column(CAM).shape[1:] == (16, 16, 3) for e in episodes)


def test_low_dim_input_that_changes_size_ends_the_episode_naming_it():
    rec = _recorder(low_dim=("pose",))
    key = constants.low_dim_key("pose")
    for t in np.arange(0.0, 2.0 + 1e-9, 0.05):
        t = round(float(t), 6)
        _feed(rec, t)
        rec.put(key, np.zeros(3 if t < 1.5 else 4), t)
        if t == 1.0:
            assert rec.start(t)[0]
        report = rec.tick(t)
        if report.error:
            assert "low-dim `pose` (/pose) publishes (4,) values" in report.error and "(3,)" in report.error
            break
    assert not rec.recording
    rec.close()
    assert len(rec.sink.episodes[0].frames) == 5  # ticks 1.0..1.4


@pytest.mark.parametrize(
    "change, match",
    [
        ({"joint_max_age_s": float("inf")}, "`joint_max_age_s` is inf"),
        ({"image_max_age_s": float("nan")}, "`image_max_age_s` is nan"),
        ({"sample_delay_s": float("nan")}, "`sample_delay_s`"),
        ({"reject_stale_fraction": float("nan")}, "`reject_stale_fraction`"),
    ],
)
def test_config_refuses_non_finite_numbers_naming_the_field(change, match):
    with pytest.raises(ValueError, match=match):
        _config(**change)


@pytest.mark.parametrize(
    "change, match",
    [
        ({"fps": 0}, "`fps`"),
        ({"task": " "}, "`task`"),
        ({"joint_names": ("a", "a")}, "duplicates"),
        ({"cameras": ("front", "front")}, "`camera_names` has duplicates"),
        ({"cameras": ("cam/front",)}, "`camera_names` entry 'cam/front'"),
        ({"low_dim": ("state",)}, "`low_dim_names` entry 'state'"),
        ({"reject_stale_fraction": 2.0}, "reject_stale_fraction"),
    ],
)
def test_config_refuses_bad_values(change, match):
    with pytest.raises(ValueError, match=match):
        _config(**change)
