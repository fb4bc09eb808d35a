"""LeRobotDataset reader on the real SO-101 v3.0 example (AV1 video) and on broken datasets."""
import json
import shutil

import numpy as np
import pytest

from vqbet_ros import constants
from vqbet_ros.data.lerobot_reader import LeRobotDataset

SO101 = "external/so101_rosbag2lerobot_example"
WRIST = constants.image_key("wrist")
LENGTHS = [383, 386, 379, 382, 90, 162]


@pytest.fixture(scope="module")
def so101(shared_dir):
    return LeRobotDataset(shared_dir / SO101)


def test_reader_lists_episodes_with_their_lengths(so101):
    assert so101.num_episodes == 6 and so101.num_frames == 1782
    assert [hi - lo for lo, hi in so101.episode_ranges] == LENGTHS
    assert so101.episode_ranges[4] == (1530, 1620)
    assert so101.fps == 30 and so101.video_keys == [WRIST]
    assert so101.tasks == {0: "pick and place"}


def test_reader_columns_have_feature_shapes(so101):
    state = so101.read_column(constants.STATE)
    assert state.shape == (1782, 6) and state.dtype == np.float32
    assert so101.read_column(constants.EPISODE_INDEX)[1530:1620, 0].tolist() == [4] * 90
    np.testing.assert_allclose(so101.stats[constants.ACTION]["min"], so101.read_column(constants.ACTION).min(0))


def test_reader_flattens_dict_style_joint_names(so101):
    assert so101.feature_names(constants.STATE) == ["j0", "j1", "j2", "j3", "j4", "j5"]
    assert so101.feature_names(constants.TIMESTAMP) is None


def test_reader_decodes_one_episode_with_its_frame_count(so101):
    frames = so101.decode_video(WRIST, 4)
    assert frames.shape == (90, 360, 640, 3) and frames.dtype == np.uint8
    assert frames.std() > 5  # real image content, not a blank


def test_reader_decoded_slice_equals_the_same_frames_of_the_full_episode(so101):
    whole = so101.decode_video(WRIST, 4)
    part = so101.decode_video(WRIST, 4, start=40, stop=43)
    np.testing.assert_array_equal(part, whole[40:43])


def test_reader_resizes_frames_into_channels_first_array(so101):
    frames = so101.load_frames(WRIST, size=(36, 64), episodes=[4])
    assert frames.shape == (1782, 3, 36, 64)
    assert frames[1530:1620].any() and not frames[:1530].any()


def test_reader_refuses_missing_root(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        LeRobotDataset(tmp_path / "nope")


def test_reader_refuses_directory_without_info(tmp_path):
    with pytest.raises(FileNotFoundError, match="meta/info.json"):
        LeRobotDataset(tmp_path)


def test_reader_explains_how_to_convert_v21(tmp_path):
    (tmp_path / "meta").mkdir()
    (tmp_path / "meta" / "info.json").write_text(json.dumps({"codebase_version": "v2.1", "fps": 30}))
    with pytest.raises(ValueError, match="v2.1.*convert_dataset_v21_to_v30"):
        LeRobotDataset(tmp_path)


def test_reader_unknown_key_lists_available_features(so101):
    with pytest.raises(KeyError, match="observation.images.front.*available features.*observation.state"):
        so101.read_column(constants.image_key("front"))


def test_reader_points_video_features_to_decode_video(so101):
    with pytest.raises(ValueError, match="decode_video"):
        so101.read_column(WRIST)


def test_reader_reports_missing_video_file(shared_dir, tmp_path):
    root = tmp_path / "ds"
    shutil.copytree(shared_dir / SO101 / "meta", root / "meta")
    shutil.copytree(shared_dir / SO101 / "data", root / "data")
    with pytest.raises(FileNotFoundError, match="file-000.mp4"):
        LeRobotDataset(root).decode_video(WRIST, 0)


def test_reader_reports_video_shorter_than_episode(shared_dir, tmp_path):
    root = tmp_path / "ds"
    shutil.copytree(shared_dir / SO101, root)
    info = json.loads((root / "meta" / "info.json").read_text())
    info["fps"] = 60  # the 30 fps video now covers only half the rows
    (root / "meta" / "info.json").write_text(json.dumps(info))
    with pytest.raises(ValueError, match="expected|decoded"):
        LeRobotDataset(root).decode_video(WRIST, 4)


@pytest.mark.slow
def test_reader_decodes_every_episode_with_its_frame_count(so101):
    for episode, length in enumerate(LENGTHS):
        assert so101.decode_video(WRIST, episode).shape == (length, 360, 640, 3)


def _png(rgb: np.ndarray) -> bytes:
    import av

    encoder = av.CodecContext.create("png", "w")
    encoder.width, encoder.height, encoder.pix_fmt = rgb.shape[1], rgb.shape[0], "rgb24"
    packets = encoder.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")) + encoder.encode(None)
    return bytes(packets[0])


def _write_image_dataset(root, frames, lengths):
    """A minimal v3 dataset whose camera is an `image` feature (PNG bytes in parquet), two data files."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    n = len(frames)
    features = {
        constants.image_key("top"): {"dtype": "image", "shape": list(frames.shape[1:]), "names": None},
        constants.ACTION: {"dtype": "float32", "shape": [1], "names": None},
        constants.INDEX: {"dtype": "int64", "shape": [1], "names": None},
    }
    (root / "meta" / "episodes" / "chunk-000").mkdir(parents=True)
    info = {"codebase_version": "v3.0", "fps": 5, "total_frames": n, "features": features,
            "data_path": "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet", "video_path": None}
    (root / "meta" / "info.json").write_text(json.dumps(info))
    rows, start = [], 0
    for e, length in enumerate(lengths):
        rows.append({"episode_index": e, "length": length, "data/chunk_index": 0, "data/file_index": e,
                     "dataset_from_index": start, "dataset_to_index": start + length})
        table = pa.table({
            constants.image_key("top"): pa.array(
                [{"bytes": _png(frames[i]), "path": None} for i in range(start, start + length)],
                type=pa.struct([("bytes", pa.binary()), ("path", pa.string())])),
            constants.ACTION: pa.array(np.arange(start, start + length, dtype=np.float32)),
            constants.INDEX: pa.array(np.arange(start, start + length, dtype=np.int64)),
        })
        (root / "data" / "chunk-000").mkdir(parents=True, exist_ok=True)
        pq.write_table(table, root / "data" / "chunk-000" / f"file-{e:03d}.parquet")
        start += length
    pd.DataFrame(rows).to_parquet(root / "meta" / "episodes" / "chunk-000" / "file-000.parquet")


def test_reader_decodes_image_features_exactly(tmp_path):
    frames = np.random.default_rng(0).integers(0, 256, size=(5, 6, 8, 3), dtype=np.uint8)
    _write_image_dataset(tmp_path, frames, [2, 3])
    dataset = LeRobotDataset(tmp_path)
    key = constants.image_key("top")
    np.testing.assert_array_equal(dataset.read_frames(key, 1), frames[2:])
    arrays = dataset.load_arrays()
    np.testing.assert_array_equal(arrays[key], frames.transpose(0, 3, 1, 2))
    assert arrays[constants.ACTION][:, 0].tolist() == [0, 1, 2, 3, 4]


def test_reader_reports_undecodable_video(shared_dir, tmp_path):
    root = tmp_path / "ds"
    shutil.copytree(shared_dir / SO101 / "meta", root / "meta")
    shutil.copytree(shared_dir / SO101 / "data", root / "data")
    video = root / "videos" / WRIST / "chunk-000" / "file-000.mp4"
    video.parent.mkdir(parents=True)
    video.write_bytes(b"not an mp4 at all" * 100)
    with pytest.raises(ValueError, match="could not be decoded.*decoders"):
        LeRobotDataset(root).decode_video(WRIST, 0)
