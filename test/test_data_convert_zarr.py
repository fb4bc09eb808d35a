"""vqbet-convert on the real PushT zarr (first episodes only), read back with LeRobotDataset."""
import numpy as np
import pytest

from vqbet_ros import constants
from vqbet_ros.data.convert_zarr import main
from vqbet_ros.data.lerobot_reader import LeRobotDataset
from vqbet_ros.data.zarr_replay import load_pusht_zarr

PUSHT = "external/pusht_cchi_v7_replay.zarr"
CAMERA = constants.image_key("image")


@pytest.fixture(scope="module")
def source(shared_dir):
    return load_pusht_zarr(shared_dir / PUSHT, with_images=True, max_episodes=3)


@pytest.fixture(scope="module")
def converted(shared_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("convert") / "pusht"
    assert main([str(shared_dir / PUSHT), str(out), "--max-episodes", "3"]) == 0
    return LeRobotDataset(out)


def test_convert_keeps_episode_boundaries_and_fps(converted, source):
    _, ranges = source
    assert converted.episode_ranges == ranges == [(0, 161), (161, 279), (279, 420)]
    assert converted.fps == 10
    assert converted.features[constants.STATE]["names"] == ["x", "y"]
    assert converted.features[constants.ENV_STATE]["shape"] == [18]


@pytest.mark.parametrize("key", [constants.STATE, constants.ENV_STATE, constants.ACTION])
def test_convert_round_trips_values_exactly(converted, source, key):
    arrays, _ = source
    values = converted.read_column(key)
    assert values.dtype == np.float32
    np.testing.assert_array_equal(values, arrays[key])


def test_convert_video_frames_are_close_to_the_source_images(converted, source):
    arrays, _ = source
    frames = converted.load_frames(CAMERA)  # (N, 3, 96, 96), one frame per row
    assert frames.shape == arrays[CAMERA].shape
    mse = np.mean((frames.astype(np.float64) - arrays[CAMERA]) ** 2)
    assert 10 * np.log10(255.0**2 / mse) >= 30.0


def test_convert_without_video_stores_state_only(shared_dir, tmp_path):
    out = tmp_path / "state_only"
    assert main([str(shared_dir / PUSHT), str(out), "--max-episodes", "1", "--no-video"]) == 0
    dataset = LeRobotDataset(out)
    assert dataset.camera_keys == [] and dataset.num_frames == 161
    assert dataset.info["video_path"] is None


def test_convert_h264_video_decodes_one_frame_per_row(shared_dir, tmp_path):
    out = tmp_path / "h264"
    assert main([str(shared_dir / PUSHT), str(out), "--max-episodes", "1", "--video-codec", "libx264"]) == 0
    dataset = LeRobotDataset(out)
    assert dataset.features[CAMERA]["info"]["video.codec"] == "h264"
    assert dataset.decode_video(CAMERA, 0).shape == (161, 96, 96, 3)


def test_convert_refuses_existing_dataset_without_overwrite(converted, shared_dir, capsys):
    assert main([str(shared_dir / PUSHT), str(converted.root), "--max-episodes", "1"]) == 2
    assert "--overwrite" in capsys.readouterr().err


def test_convert_names_unknown_zarr_key(shared_dir, tmp_path, capsys):
    assert main([str(shared_dir / PUSHT), str(tmp_path / "x"), "--extra-key", "nope"]) == 2
    err = capsys.readouterr().err
    assert "--extra-key" in err and "data/nope" in err and "keypoint" in err


def test_convert_refuses_missing_zarr(tmp_path, capsys):
    assert main([str(tmp_path / "missing.zarr"), str(tmp_path / "out")]) == 2
    assert "does not exist" in capsys.readouterr().err


@pytest.mark.slow
def test_convert_full_pusht_round_trips_every_value(shared_dir, tmp_path):
    out = tmp_path / "pusht_full"
    assert main([str(shared_dir / PUSHT), str(out)]) == 0  # ~40 s on 2 busy cores
    dataset = LeRobotDataset(out)
    arrays, ranges = load_pusht_zarr(shared_dir / PUSHT)
    assert dataset.episode_ranges == ranges and dataset.num_frames == 25650
    for key, values in arrays.items():
        np.testing.assert_array_equal(dataset.read_column(key), values)
    assert dataset.decode_video(CAMERA, 205).shape == (ranges[-1][1] - ranges[-1][0], 96, 96, 3)


def _tiny_zarr(tmp_path):
    from training_fixtures import make_pusht_zarr

    return make_pusht_zarr(tmp_path)  # 4 episodes of 24 frames, one chunk per array


def test_convert_names_a_damaged_zarr_chunk_instead_of_a_codec_traceback(tmp_path, capsys):
    path = _tiny_zarr(tmp_path)
    chunk = next(p for p in (path / "data" / "action").iterdir() if not p.name.startswith("."))
    chunk.write_bytes(chunk.read_bytes()[:20])  # a truncated chunk file
    assert main([str(path), str(tmp_path / "out"), "--no-video"]) == 2
    err = capsys.readouterr().err
    assert "episode 0 (rows 0..24)" in err and "`data/action` rows 0..24 (chunks of 96 rows) could not be read" in err
    with pytest.raises(ValueError, match=r"`data/action` rows 0\.\.96 .*could not be read"):
        load_pusht_zarr(path)  # what vqbet-train reads


def test_convert_names_the_episode_holding_a_nan_and_keeps_the_ones_before(tmp_path, capsys):
    import zarr

    path = _tiny_zarr(tmp_path)
    zarr.open_group(str(path), mode="r+")["data/action"][2 * 24 + 5, 0] = np.nan
    assert main([str(path), str(tmp_path / "out"), "--no-video"]) == 2
    err = capsys.readouterr().err
    assert "episode 2 (rows 48..72): frame 5 refused" in err and "`action`: non-finite" in err
    assert "The 2 episode(s) before it are saved" in err
    assert LeRobotDataset(tmp_path / "out").num_episodes == 2
