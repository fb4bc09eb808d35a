"""LeRobotWriter: episodes round-trip through our reader; durability, recovery, append and refusals.

Images are tiny (64x48) and episodes short so the whole file runs in a few seconds on 2 cores.
"""
import errno
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from vqbet_ros.data import lerobot_writer, video_encoder
from vqbet_ros.data.lerobot_reader import LeRobotDataset
from vqbet_ros.data.lerobot_writer import (
    DatasetLockedError,
    LeRobotWriter,
    RootLock,
    WriterError,
    WriterOverloadedError,
)
from vqbet_ros.data.video_encoder import VideoEncoding

FPS = 30
H, W = 48, 64
CAM = "observation.images.front"
FEATURES = {
    "observation.state": {"dtype": "float32", "shape": [2], "names": ["j0", "j1"]},
    "action": {"dtype": "float32", "shape": [2], "names": ["j0", "j1"]},
    CAM: {"dtype": "video", "shape": [H, W, 3]},
}


def _image(episode: int, t: int) -> np.ndarray:
    """A smooth, frame-specific picture (codecs handle it like camera content)."""
    yy, xx = np.mgrid[0:H, 0:W]
    img = np.stack([(xx * 4 + t * 8) % 256, (yy * 5 + episode * 60) % 256, np.full_like(xx, 40 + t * 5)], axis=-1)
    return img.astype(np.uint8)


def _frame(episode: int, t: int) -> dict:
    return {
        "observation.state": np.array([t, episode], np.float32),
        "action": np.array([t + 0.5, -episode], np.float32),
        CAM: _image(episode, t),
    }


def _record(writer: LeRobotWriter, episode: int, length: int, task: str = "push the T", extras=None):
    writer.start_episode(task)
    for t in range(length):
        writer.add_frame(_frame(episode, t))
    return writer.save_episode(extras)


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def _column(ds: LeRobotDataset, key: str) -> np.ndarray:
    """A column over all episodes, read episode by episode (works for the `index` column itself too)."""
    return np.concatenate([ds.read_episode_column(key, e["episode_index"]) for e in ds.episodes]).ravel()


@pytest.fixture
def root(tmp_path) -> Path:
    return tmp_path / "ds"


def test_saved_episodes_read_back_with_values_timestamps_and_indices(root):
    with LeRobotWriter.create(root, fps=FPS, features=FEATURES, robot_type="pusht") as writer:
        saved = [_record(writer, e, n).result() for e, n in [(0, 12), (1, 7)]]
    assert [s.episode_index for s in saved] == [0, 1]
    ds = LeRobotDataset(root)
    assert ds.num_episodes == 2 and ds.num_frames == 19 and ds.fps == FPS
    assert ds.info["robot_type"] == "pusht" and ds.info["codebase_version"] == "v3.0"
    assert ds.info["splits"] == {"train": "0:2"} and ds.info["total_tasks"] == 1
    state = ds.read_column("observation.state")
    expected = np.concatenate([[[t, e] for t in range(n)] for e, n in [(0, 12), (1, 7)]]).astype(np.float32)
    np.testing.assert_array_equal(state, expected)
    np.testing.assert_array_equal(_column(ds, "index"), np.arange(19))
    np.testing.assert_array_equal(ds.read_column("frame_index").ravel()[12:], np.arange(7))
    np.testing.assert_array_equal(ds.read_column("timestamp").ravel()[12:], (np.arange(7) / FPS).astype(np.float32))
    assert ds.episode_ranges == [(0, 12), (12, 19)]
    assert ds.tasks == {0: "push the T"}


def test_video_frames_match_source_images(root):
    with LeRobotWriter.create(root, fps=FPS, features=FEATURES) as writer:
        _record(writer, 0, 10).result()
    ds = LeRobotDataset(root)
    frames = ds.decode_video(CAM, 0)
    assert frames.shape == (10, H, W, 3)
    for t in range(10):
        assert _psnr(frames[t], _image(0, t)) >= 30
    info = ds.features[CAM]["info"]
    assert info["video.codec"] == "av1" and info["video.fps"] == FPS and info["video.height"] == H


def test_h264_is_selectable(root):
    with LeRobotWriter.create(root, fps=FPS, features=FEATURES, video=VideoEncoding("libx264", crf=18,
                                                                                     preset="ultrafast")) as w:
        _record(w, 0, 6).result()
    ds = LeRobotDataset(root)
    assert ds.features[CAM]["info"]["video.codec"] == "h264"
    assert min(_psnr(f, _image(0, t)) for t, f in enumerate(ds.decode_video(CAM, 0))) >= 30


def test_stats_match_the_data(root):
    with LeRobotWriter.create(root, fps=FPS, features=FEATURES) as writer:
        for e, n in [(0, 9), (1, 5), (2, 8)]:
            _record(writer, e, n)
    ds = LeRobotDataset(root)
    stats = ds.stats
    for key in ("observation.state", "action"):
        values = ds.read_column(key).astype(np.float64)
        np.testing.assert_allclose(stats[key]["min"], values.min(0))
        np.testing.assert_allclose(stats[key]["max"], values.max(0))
        np.testing.assert_allclose(stats[key]["mean"], values.mean(0), rtol=1e-6)
        np.testing.assert_allclose(stats[key]["std"], values.std(0), rtol=1e-5)
        assert stats[key]["count"].tolist() == [22]
        assert np.all(stats[key]["q01"] <= stats[key]["q50"]) and np.all(stats[key]["q50"] <= stats[key]["q99"])
    episode = ds.episode_stats(1)["observation.state"]  # per episode, quantiles are exact
    np.testing.assert_allclose(episode["q50"], np.median(ds.read_episode_column("observation.state", 1), 0))
    frames = np.concatenate([ds.decode_video(CAM, e) for e in range(3)]) / 255.0
    np.testing.assert_allclose(stats[CAM]["mean"].ravel(), frames.mean(axis=(0, 1, 2)), atol=0.01)
    np.testing.assert_allclose(stats[CAM]["std"].ravel(), frames.std(axis=(0, 1, 2)), atol=0.01)
    assert stats[CAM]["mean"].shape == (3, 1, 1)


def test_episode_extras_are_stored_in_episode_metadata(root):
    with LeRobotWriter.create(root, fps=FPS, features=FEATURES) as writer:
        _record(writer, 0, 3, extras={"recorder/stale_frames": 2, "recorder/note": "ok"}).result()
        _record(writer, 1, 3).result()
    episodes = LeRobotDataset(root).episodes
    assert episodes[0]["recorder/stale_frames"] == 2 and episodes[0]["recorder/note"] == "ok"
    assert episodes[1]["recorder/stale_frames"] is None or np.isnan(episodes[1]["recorder/stale_frames"])


def test_discarded_episode_leaves_no_trace(root):
    with LeRobotWriter.create(root, fps=FPS, features=FEATURES) as writer:
        _record(writer, 0, 4).result()
        writer.start_episode("bad demo")
        for t in range(5):
            writer.add_frame(_frame(9, t))
        assert writer.discard_episode() == 5
        _record(writer, 1, 3).result()
    ds = LeRobotDataset(root)
    assert [e["length"] for e in ds.episodes] == [4, 3]
    assert ds.tasks == {0: "push the T"}
    assert len(list(root.glob("videos/**/*.mp4"))) == 2 and not any((root / ".partial").glob("**/*.mp4"))


def test_closed_writer_leaves_only_dataset_files_and_reopens_without_leftover_warning(root, caplog):
    with LeRobotWriter.create(root, fps=FPS, features=FEATURES) as writer:
        _record(writer, 0, 4).result()
        writer.start_episode("bad demo")
        writer.add_frame(_frame(9, 0))
        writer.discard_episode()
    assert not (root / ".partial").exists()  # an empty staging folder would read as an interrupted save
    with caplog.at_level("WARNING"):
        LeRobotWriter.open(root).close()
    assert "leftovers" not in caplog.text


def test_reopen_appends_with_new_files_and_tasks(root):
    with LeRobotWriter.create(root, fps=FPS, features=FEATURES) as writer:
        _record(writer, 0, 4).result()
    with LeRobotWriter.open_or_create(root, fps=FPS, features=FEATURES) as writer:
        saved = _record(writer, 1, 6, task="stack").result()
    assert saved.episode_index == 1 and saved.data_path.name == "file-001.parquet"
    ds = LeRobotDataset(root)
    assert ds.num_frames == 10 and ds.tasks == {0: "push the T", 1: "stack"}
    np.testing.assert_array_equal(ds.read_column("task_index").ravel(), [0] * 4 + [1] * 6)
    assert ds.episodes[1]["tasks"] == ["stack"]


@pytest.mark.parametrize(
    "change, match",
    [
        ({"fps": 15}, "fps 30, requested 15"),
        ({"features": {**FEATURES, "action": {"dtype": "float32", "shape": [3], "names": None}}}, "shape"),
    ],
)
def test_open_or_create_refuses_a_different_dataset(root, change, match):
    LeRobotWriter.create(root, fps=FPS, features=FEATURES).close()
    kwargs = {"fps": FPS, "features": FEATURES, **change}
    with pytest.raises(ValueError, match=match):
        LeRobotWriter.open_or_create(root, **kwargs)


def test_second_writer_on_same_root_is_refused(root):
    with LeRobotWriter.create(root, fps=FPS, features=FEATURES):
        with pytest.raises(RuntimeError, match="another process"):
            LeRobotWriter.open(root)


def test_second_writer_on_a_fresh_root_is_refused_before_writing_anything(root):
    with LeRobotWriter.create(root, fps=FPS, features=FEATURES):
        with pytest.raises(DatasetLockedError, match="another process or writer"):
            LeRobotWriter.create(root, fps=FPS, features=FEATURES)
    tmp = root.parent / "fresh"
    lock = RootLock(tmp)  # e.g. a recorder holding its root from configure on, before its first episode
    with pytest.raises(DatasetLockedError):
        LeRobotWriter.create(tmp, fps=FPS, features=FEATURES)
    assert not (tmp / "meta").exists()
    with LeRobotWriter.create(tmp, fps=FPS, features=FEATURES, lock=lock) as writer:  # the holder may write
        _record(writer, 0, 2).result()
    with pytest.raises(DatasetLockedError):  # and still holds the root after its writer closed
        LeRobotWriter.open(tmp)
    lock.release()
    LeRobotWriter.open(tmp).close()


@pytest.mark.parametrize("text", ["{not json", "[1, 2]", '{"codebase_version": "v3.0", "fps": "fast", "features": {}}',
                                  "\udcff"])
def test_open_names_a_damaged_info_json(root, text):
    with LeRobotWriter.create(root, fps=FPS, features=FEATURES) as writer:
        _record(writer, 0, 2).result()
    (root / "meta" / "info.json").write_bytes(text.encode("utf-8", "surrogateescape"))
    with pytest.raises(ValueError, match=r"meta/info\.json"):
        LeRobotWriter.open(root)
    with pytest.raises(ValueError, match=r"meta/info\.json"):
        LeRobotDataset(root)
    RootLock(root).release()  # the refused open released the root


def test_open_removes_leftovers_and_repairs_info(root):
    with LeRobotWriter.create(root, fps=FPS, features=FEATURES) as writer:
        _record(writer, 0, 4).result()
    # What a kill between steps of a save can leave: partial encodes, an uncommitted data file and video,
    # a temp metadata file, and an info.json that lags meta/episodes.
    (root / ".partial" / "ep000009").mkdir(parents=True)
    (root / ".partial" / "ep000009" / f"{CAM}.mp4").write_bytes(b"half a video")
    (root / "data" / "chunk-000" / "file-001.parquet").write_bytes(b"PAR1 no footer")
    (root / "videos" / CAM / "chunk-000" / "file-001.mp4").write_bytes(b"\x00")
    (root / "meta" / "info.json.tmp").write_text("{")
    info = json.loads((root / "meta" / "info.json").read_text())
    info["total_frames"] = 0
    (root / "meta" / "info.json").write_text(json.dumps(info))
    with LeRobotWriter.open(root) as writer:
        _record(writer, 1, 3).result()
    assert not (root / ".partial").exists() or not any((root / ".partial").iterdir())
    assert not (root / "meta" / "info.json.tmp").exists()
    ds = LeRobotDataset(root)
    assert ds.info["total_frames"] == 7 and [e["length"] for e in ds.episodes] == [4, 3]
    assert ds.decode_video(CAM, 1).shape[0] == 3


def test_save_failure_reports_disk_full_and_keeps_saved_episodes(root, monkeypatch):
    with LeRobotWriter.create(root, fps=FPS, features=FEATURES) as writer:
        _record(writer, 0, 4).result()
        real = lerobot_writer.atomic_write_table

        def full_disk(path, table):
            raise OSError(errno.ENOSPC, "No space left on device", str(path))

        monkeypatch.setattr(lerobot_writer, "atomic_write_table", full_disk)
        with pytest.raises(WriterError, match="disk full"):
            _record(writer, 1, 4).result()
        monkeypatch.setattr(lerobot_writer, "atomic_write_table", real)
        assert _record(writer, 2, 5).result().episode_index == 1
    ds = LeRobotDataset(root)
    assert [e["length"] for e in ds.episodes] == [4, 5]
    np.testing.assert_array_equal(ds.read_episode_column("observation.state", 1)[:, 1], [2] * 5)


def test_unwritable_root_gives_clear_error(tmp_path):
    target = tmp_path / "file_not_dir"
    target.write_text("x")
    with pytest.raises(WriterError, match="file_not_dir"):
        LeRobotWriter.create(target / "ds", fps=FPS, features=FEATURES)


def test_full_encode_queue_raises_and_discards_episode(root, monkeypatch):
    monkeypatch.setattr(video_encoder.CameraEncoder, "_encode", lambda self, rgb: time.sleep(0.2))
    writer = LeRobotWriter.create(root, fps=FPS, features=FEATURES, max_queue_frames=2, put_timeout_s=0.05)
    writer.start_episode("t")
    with pytest.raises(WriterOverloadedError, match="cannot keep up"):
        for t in range(10):
            writer.add_frame(_frame(0, t))
    assert not writer.episode_open
    writer.close()


@pytest.mark.parametrize(
    "features, match",
    [
        ({"x": {"dtype": "video", "shape": [4, 4]}}, "height, width, 3"),
        ({"x": {"dtype": "float32", "shape": [2], "names": ["a/b", "c"]}}, "'/'"),
        ({"x": {"dtype": "text", "shape": [1]}}, "dtype 'text'"),
        ({"timestamp": {"dtype": "float32", "shape": [1]}}, "written by the writer"),
    ],
)
def test_create_refuses_bad_features(root, features, match):
    with pytest.raises(ValueError, match=match):
        LeRobotWriter.create(root, fps=FPS, features=features)


def test_add_frame_refuses_wrong_keys_and_image_size(root):
    with LeRobotWriter.create(root, fps=FPS, features=FEATURES) as writer:
        writer.start_episode("t")
        with pytest.raises(ValueError, match="missing"):
            writer.add_frame({"action": np.zeros(2)})
        bad = _frame(0, 0)
        bad[CAM] = np.zeros((10, 10, 3), np.uint8)
        with pytest.raises(ValueError, match="resolution"):
            writer.add_frame(bad)


def test_refused_frame_leaves_the_episode_unchanged(root):
    """A camera that changed resolution, or a NaN / float32-overflowing value, refuses the whole frame; the
    frames before and after it are saved consistently."""
    with LeRobotWriter.create(root, fps=FPS, features=FEATURES) as writer:
        writer.start_episode("t")
        for t in range(3):
            writer.add_frame(_frame(0, t))
        resized = _frame(0, 99)
        resized[CAM] = np.zeros((H * 2, W * 2, 3), np.uint8)
        nan_state = _frame(0, 99)
        nan_state["observation.state"] = np.array([np.nan, 0.0])
        too_big = _frame(0, 99)
        too_big["action"] = np.array([1e39, 0.0])  # finite as float64, inf as the dataset's float32
        wrong_size = _frame(0, 99)
        wrong_size["action"] = np.zeros(3)
        for bad, match in [(resized, "resolution"), (nan_state, "`observation.state`: non-finite"),
                           (too_big, "`action`: non-finite"), (wrong_size, "`action`: 3 values")]:
            with pytest.raises(ValueError, match=match):
                writer.add_frame(bad)
        for t in range(3, 5):
            writer.add_frame(_frame(0, t))
        assert writer.save_episode().result().length == 5
    ds = LeRobotDataset(root)
    np.testing.assert_array_equal(ds.read_column("observation.state")[:, 0], np.arange(5))
    assert np.isfinite(ds.read_column("action")).all()
    assert len(ds.decode_video(CAM, 0)) == 5


_KILL_SCRIPT = textwrap.dedent(
    """
    import sys, time
    sys.path.insert(0, {test_dir!r})
    from test_data_lerobot_writer import FEATURES, FPS, _frame, _record
    from vqbet_ros.data.lerobot_writer import LeRobotWriter
    writer = LeRobotWriter.open_or_create({root!r}, fps=FPS, features=FEATURES)
    for e in range(2):
        _record(writer, e, 5 + e).result()
    writer.start_episode("doomed")
    for t in range(15):
        writer.add_frame(_frame(7, t))
    from pathlib import Path
    deadline = time.monotonic() + 20  # until the encoder has written part of the open episode's mp4
    while not any(Path({root!r}, ".partial").glob("**/*.mp4")) and time.monotonic() < deadline:
        time.sleep(0.05)
    print("READY", flush=True)
    time.sleep(60)
    """
)


def test_sigkill_mid_episode_keeps_saved_episodes_and_restart_appends(root):
    script = _KILL_SCRIPT.format(test_dir=str(Path(__file__).parent), root=str(root))
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "READY"
        assert any((root / ".partial").glob("**/*.mp4"))  # the open episode really was being written
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    ds = LeRobotDataset(root)
    assert [e["length"] for e in ds.episodes] == [5, 6]
    assert ds.decode_video(CAM, 1).shape[0] == 6
    with LeRobotWriter.open(root) as writer:
        assert writer.num_episodes == 2
        _record(writer, 2, 4).result()
    ds = LeRobotDataset(root)
    assert [e["length"] for e in ds.episodes] == [5, 6, 4]
    np.testing.assert_array_equal(_column(ds, "index"), np.arange(15))
    assert not any((root / ".partial").glob("**/*"))


@pytest.mark.slow
def test_lerobot_itself_loads_every_frame_within_its_tolerance(root):
    """LeRobot's own LeRobotDataset (>= 0.4, v3.0) reads what we wrote: metadata, rows, tasks, stats, and the
    video frame of every row within its 1e-4 s timestamp tolerance. Needs `lerobot` importable (not a
    dependency: e.g. `pip install --target /tmp/lr --no-deps lerobot==0.4.0 datasets==4.1.1 ...`).

    Its video decoders need torchvision.io.VideoReader (gone in recent torchvision) or torchcodec with system
    FFmpeg; the decode step is replaced by the same algorithm on PyAV (seek, decode to the last timestamp,
    nearest frame, tolerance assertion), so the check on our timestamps is LeRobot's own.
    """
    lds = pytest.importorskip("lerobot.datasets.lerobot_dataset")
    import av
    import torch

    def decode_pyav(video_path, timestamps, tolerance_s, backend=None):
        first, last = min(timestamps), max(timestamps)
        with av.open(str(video_path)) as container:
            stream = container.streams.video[0]
            container.seek(int(first / stream.time_base), stream=stream, backward=True)
            frames, stamps = [], []
            for frame in container.decode(stream):
                frames.append(torch.from_numpy(frame.to_ndarray(format="rgb24")).permute(2, 0, 1))
                stamps.append(float(frame.time))
                if stamps[-1] >= last:
                    break
        dist = torch.cdist(torch.tensor(timestamps)[:, None], torch.tensor(stamps)[:, None], p=1)
        nearest, index = dist.min(1)
        assert (nearest < tolerance_s).all(), f"tolerance violated at {timestamps}: {nearest}"
        return torch.stack([frames[i] for i in index]).float() / 255

    with LeRobotWriter.create(root, fps=FPS, features=FEATURES, robot_type="pusht") as writer:
        for e, n in [(0, 8), (1, 5)]:
            _record(writer, e, n, task=f"task {e}")
    lds.decode_video_frames = decode_pyav
    theirs = lds.LeRobotDataset("local/test", root=root)
    assert theirs.num_episodes == 2 and theirs.num_frames == 13 and theirs.fps == FPS
    for i in range(len(theirs)):
        item = theirs[i]
        episode, t = (0, i) if i < 8 else (1, i - 8)
        np.testing.assert_array_equal(item["observation.state"].numpy(), [t, episode])
        assert item["task"] == f"task {episode}"
        image = (item[CAM].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        assert _psnr(image, _image(episode, t)) >= 30
    window = lds.LeRobotDataset("local/test", root=root,
                                delta_timestamps={CAM: [-1 / FPS, 0.0], "action": [0.0, 1 / FPS, 2 / FPS]})
    item = window[9]
    assert tuple(item[CAM].shape) == (2, 3, H, W) and tuple(item["action"].shape) == (3, 2)
