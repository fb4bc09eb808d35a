"""EpisodeRecorder without ROS: the 1/fps grid, late ticks, stale counting and rejection, stop/start order."""
import json

import numpy as np
import pytest

from vqbet_ros import constants
from vqbet_ros.data.lerobot_reader import LeRobotDataset
from vqbet_ros.data.lerobot_writer import DatasetLockedError
from vqbet_ros.runtime.recorder import CameraConfig, EpisodeRecorder, LowDimConfig, RecorderConfig

FPS = 10
CAM = constants.image_key("cam")


def _config(tmp_path, **kw) -> RecorderConfig:
    base = dict(root=str(tmp_path), dataset_name="ds", task="t", joint_names=("a",), action_topic="/cmd",
                cameras=(CameraConfig("cam", "/cam"),), fps=FPS, sample_delay_s=0.0, state_max_age_s=0.15,
                action_max_age_s=0.15, camera_max_age_s=0.15, video_codec="libx264", video_preset="ultrafast")
    base.update(kw)
    return RecorderConfig(**base)


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


def test_frames_follow_the_grid_even_when_ticks_arrive_late(tmp_path):
    rec = EpisodeRecorder(_config(tmp_path))
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
    ds = LeRobotDataset(tmp_path / "ds")
    # Tick k at 1.0 + k/10 takes the value stamped <= the tick: exactly that tick's value.
    np.testing.assert_allclose(ds.read_column(constants.STATE).ravel(), 1.0 + np.arange(10) / 10, atol=1e-6)
    assert ds.episodes[0]["recorder/stale_frames"] == 0


def test_episode_saved_long_after_its_stop_has_no_stale_frames(tmp_path):
    """Deactivation saves the last ticks whenever it runs (a loaded machine): messages that arrived meanwhile,
    far newer than those ticks, do not make them stale."""
    rec = EpisodeRecorder(_config(tmp_path, sample_delay_s=0.2))
    _run(rec, 0.0, 1.0)
    rec.start(1.0)
    _run(rec, 1.05, 1.5)
    rec.stop(1.5)  # ticks 1.4 and 1.5 wait for the sample delay ...
    for t in np.arange(1.55, 2.2, 0.05):  # ... while the timer is starved and messages keep coming
        _feed(rec, round(float(t), 6))
    assert rec.finish_now() == "episode stopped: 6 frames; saving in the background"
    rec.close()
    episode = LeRobotDataset(tmp_path / "ds").episodes[0]
    assert episode["length"] == 6 and episode["recorder/stale_frames"] == 0


def test_publisher_clock_ahead_during_an_episode_makes_its_frames_stale(tmp_path):
    rec = EpisodeRecorder(_config(tmp_path))
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
    episode = LeRobotDataset(tmp_path / "ds").episodes[0]
    assert json.loads(episode["recorder/stale_by_stream"]) == {constants.STATE: episode["recorder/stale_frames"]}
    assert episode["recorder/stale_frames"] >= 8  # every tick older than max age (0.15 s) past the last good one


def test_stop_keeps_ticks_up_to_stop_then_waits_for_sample_delay(tmp_path):
    rec = EpisodeRecorder(_config(tmp_path, sample_delay_s=0.2))
    _run(rec, 0.0, 1.0)
    rec.start(1.0)
    _run(rec, 1.05, 1.5)
    ok, message = rec.stop(1.5)
    assert ok and message.startswith("stopping: 6 frames")  # ticks 1.0..1.5; 1.4 and 1.5 not sampled yet
    assert rec.start(1.52)[0]  # a new episode may start while the last one finishes
    _run(rec, 1.55, 2.0)
    rec.stop(2.0)
    rec.close()
    ds = LeRobotDataset(tmp_path / "ds")
    assert [e["length"] for e in ds.episodes] == [6, 5]
    assert ds.episodes[1]["recorder/start_stamp_s"] == pytest.approx(1.52)


def test_start_refused_names_the_stale_stream(tmp_path):
    rec = EpisodeRecorder(_config(tmp_path))
    _run(rec, 0.0, 1.0, skip_from=0.5, skip=(CAM,))
    ok, message = rec.start(1.0)
    assert not ok and "camera `cam` (/cam): latest message is 0.550 s old" in message
    assert "state" not in message
    rec.close()


def test_stale_frames_are_counted_and_stored(tmp_path):
    rec = EpisodeRecorder(_config(tmp_path))
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
    episode = LeRobotDataset(tmp_path / "ds").episodes[0]
    # Ticks 1.5..2.0 (6 of 11) see an action older than 0.15 s; the frame keeps the last value.
    assert episode["length"] == 11 and episode["recorder/stale_frames"] == 6
    assert json.loads(episode["recorder/stale_by_stream"]) == {constants.ACTION: 6}


def test_episode_above_stale_threshold_is_rejected(tmp_path):
    rec = EpisodeRecorder(_config(tmp_path, reject_stale_fraction=0.2))
    _run(rec, 0.0, 1.0)
    rec.start(1.0)
    _run(rec, 1.05, 2.0, skip_from=1.3, skip=(CAM,))
    ok, message = rec.stop(2.0)
    assert ok and "rejected" in message and "camera `cam`" in message
    rec.close()
    assert not (tmp_path / "ds" / "meta" / "episodes").exists()


def test_discard_after_stop_drops_the_finishing_episode(tmp_path):
    rec = EpisodeRecorder(_config(tmp_path, sample_delay_s=0.3))
    _run(rec, 0.0, 1.0)
    rec.start(1.0)
    _run(rec, 1.05, 1.5)
    rec.stop(1.5)
    ok, message = rec.discard()
    assert ok and "discarded" in message
    _run(rec, 1.55, 2.0)
    rec.close()
    assert not (tmp_path / "ds" / "meta" / "episodes").exists()


def test_reopen_refuses_different_cameras_fps_or_joints(tmp_path):
    rec = EpisodeRecorder(_config(tmp_path))
    _run(rec, 0.0, 1.0)
    rec.start(1.0)
    _run(rec, 1.05, 1.3)
    rec.stop(1.3)
    rec.close()
    with pytest.raises(ValueError, match="configured for"):
        EpisodeRecorder(_config(tmp_path, cameras=(CameraConfig("other", "/o"),)))
    with pytest.raises(ValueError, match="recorded at 10 fps, the recorder is set to 30"):
        EpisodeRecorder(_config(tmp_path, fps=30))
    with pytest.raises(ValueError, match="joint names"):
        EpisodeRecorder(_config(tmp_path, joint_names=("b",)))
    EpisodeRecorder(_config(tmp_path)).close()  # the same set-up appends (and the refusals released the lock)


def test_non_finite_values_are_never_written_and_count_like_stale_frames(tmp_path):
    rec = EpisodeRecorder(_config(tmp_path))
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
    ds = LeRobotDataset(tmp_path / "ds")
    state, action = ds.read_column(constants.STATE).ravel(), ds.read_column(constants.ACTION).ravel()
    # The frame keeps the stream's previous value: tick 1.2's for state (1.3, 1.4, 1.5), tick 1.3's for action.
    np.testing.assert_allclose(state, [1.0, 1.1, 1.2, 1.2, 1.2, 1.2, 1.6, 1.7, 1.8, 1.9, 2.0], atol=1e-6)
    np.testing.assert_allclose(action[4], -1.3, atol=1e-6)
    episode = ds.episodes[0]
    assert episode["recorder/stale_frames"] == 3
    assert json.loads(episode["recorder/stale_by_stream"]) == {constants.ACTION: 1, constants.STATE: 3}


def test_episode_with_too_many_non_finite_frames_is_rejected_naming_the_stream(tmp_path):
    rec = EpisodeRecorder(_config(tmp_path, reject_stale_fraction=0.2))
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
    assert not (tmp_path / "ds" / "meta" / "episodes").exists()


def test_start_is_refused_while_a_latest_value_is_not_finite(tmp_path):
    rec = EpisodeRecorder(_config(tmp_path))
    _run(rec, 0.0, 1.0)
    rec.put(constants.STATE, np.array([np.nan]), 1.0)
    ok, message = rec.start(1.0)
    assert not ok and "state (/joint_states) is not finite" in message
    rec.close()
    assert not (tmp_path / "ds" / "meta").exists()  # nothing was created


def test_camera_resolution_change_ends_the_episode_and_keeps_every_good_frame(tmp_path):
    rec = EpisodeRecorder(_config(tmp_path, sample_delay_s=0.2))
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
    assert "holds 16x16" in errors[0] and "after 3 frames" in errors[0]
    assert not rec.recording
    ok, message = rec.start(2.5)
    assert not ok and "camera `cam` (/cam) publishes 32x32 images" in message
    _run(rec, 2.55, 3.0)  # the camera is back at 16x16
    assert rec.start(3.0)[0]
    _run(rec, 3.05, 3.3)
    rec.stop(3.3)
    rec.close()
    ds = LeRobotDataset(tmp_path / "ds")
    assert [e["length"] for e in ds.episodes] == [6, 3, 4]  # ticks 1.5..1.7 of the ended one are kept
    np.testing.assert_allclose(ds.read_episode_column(constants.STATE, 1).ravel(), [1.5, 1.6, 1.7], atol=1e-6)
    assert all(len(ds.decode_video(CAM, e)) == n for e, n in enumerate([6, 3, 4]))


def test_low_dim_input_that_changes_size_ends_the_episode_naming_it(tmp_path):
    rec = EpisodeRecorder(_config(tmp_path, low_dim=(LowDimConfig("pose", "/pose"),)))
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
    assert LeRobotDataset(tmp_path / "ds").episodes[0]["length"] == 5  # ticks 1.0..1.4


def test_second_recorder_on_the_same_fresh_root_is_refused(tmp_path):
    first = EpisodeRecorder(_config(tmp_path))
    with pytest.raises(DatasetLockedError, match="another process or writer"):
        EpisodeRecorder(_config(tmp_path))
    first.close()
    EpisodeRecorder(_config(tmp_path)).close()  # released by close()


@pytest.mark.parametrize(
    "change, match",
    [
        ({"state_max_age_s": float("inf")}, "`state_max_age_s` is inf"),
        ({"camera_max_age_s": float("nan")}, "`camera_max_age_s` is nan"),
        ({"sample_delay_s": float("nan")}, "`sample_delay_s`"),
        ({"reject_stale_fraction": float("nan")}, "`reject_stale_fraction`"),
        ({"max_queue_s": float("nan")}, "`max_queue_s` is nan"),
        ({"max_queue_s": float("inf")}, "`max_queue_s` is inf"),
    ],
)
def test_config_refuses_non_finite_numbers_naming_the_field(tmp_path, change, match):
    with pytest.raises(ValueError, match=match):
        _config(tmp_path, **change)


@pytest.mark.parametrize(
    "change, match",
    [
        ({"fps": 0}, "`fps`"),
        ({"task": " "}, "`task`"),
        ({"dataset_name": "../up"}, "`dataset_name`"),
        ({"joint_names": ("a", "a")}, "duplicates"),
        ({"video_codec": "mpeg2"}, "`codec`"),
        ({"reject_stale_fraction": 2.0}, "reject_stale_fraction"),
    ],
)
def test_config_refuses_bad_values(tmp_path, change, match):
    with pytest.raises(ValueError, match=match):
        _config(tmp_path, **change)
