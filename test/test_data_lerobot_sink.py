"""The recorder's LeRobot sink: a dataset created at the first episode from the streams' shapes, reopened only
for the same streams at the same fps, one sink per root."""
import numpy as np
import pytest

from vqbet_ros import constants
from vqbet_ros.data import lerobot_layout as layout
from vqbet_ros.data.lerobot_reader import LeRobotDataset, read_info
from vqbet_ros.data.lerobot_sink import LeRobotSink, LeRobotSinkConfig
from vqbet_ros.data.lerobot_writer import DatasetLockedError

FPS = 10
CAM = constants.image_key("cam")
POSE = constants.low_dim_key("pose")
STREAMS = {constants.STATE: ["a", "b"], constants.ACTION: ["a", "b"], CAM: None, POSE: None}
SHAPES = {constants.STATE: (2,), constants.ACTION: (2,), CAM: (16, 16, 3), POSE: (3,)}


def _sink(tmp_path, fps=FPS, streams=STREAMS, **kw) -> LeRobotSink:
    config = LeRobotSinkConfig(root=str(tmp_path), dataset_name="user/ds", video_codec="libx264",
                               video_preset="ultrafast", **kw)
    return LeRobotSink(config, fps, streams)


def test_lerobot_sink_creates_the_dataset_at_first_open_with_the_streams_shapes(tmp_path):
    sink = _sink(tmp_path, robot_type="arm")
    assert sink.name == str(tmp_path / "user" / "ds") and sink.num_episodes == 0
    assert not (tmp_path / "user" / "ds" / "meta").exists()  # nothing before the first start
    assert sink.open(SHAPES) == SHAPES
    sink.close()
    info = read_info(layout.info_path(tmp_path / "user" / "ds"))
    assert info["fps"] == FPS and info["robot_type"] == "arm" and info["total_episodes"] == 0
    features = info["features"]
    assert features[CAM]["dtype"] == "video" and features[CAM]["shape"] == [16, 16, 3]
    assert features[POSE] == {"dtype": "float32", "shape": [3], "names": None}
    assert features[constants.STATE]["names"] == ["a", "b"]


def test_lerobot_sink_saves_the_frames_and_extras_it_is_handed(tmp_path):
    streams = {constants.STATE: ["a", "b"], constants.ACTION: ["a", "b"], POSE: None}  # no video to encode
    sink = _sink(tmp_path, streams=streams)
    sink.open({key: SHAPES[key] for key in streams})
    sink.start_episode("push")
    for k in range(3):
        sink.add_frame({constants.STATE: np.array([k, -k]), constants.ACTION: np.array([k, k]),
                        POSE: np.full(3, float(k))})
    saved = sink.save_episode({"recorder/stale_frames": 0}).result()
    assert (saved.episode_index, saved.length) == (0, 3) and sink.num_episodes == 1
    sink.close()
    ds = LeRobotDataset(tmp_path / "user" / "ds")
    np.testing.assert_array_equal(ds.read_column(constants.STATE), [[0, 0], [1, -1], [2, -2]])
    assert ds.tasks == {0: "push"} and ds.episodes[0]["recorder/stale_frames"] == 0


def test_lerobot_sink_reopens_only_the_same_streams_at_the_same_fps(tmp_path):
    sink = _sink(tmp_path)
    sink.open(SHAPES)
    sink.close()
    with pytest.raises(ValueError, match=r"has features .* new `dataset_name`"):
        _sink(tmp_path, streams={**STREAMS, constants.image_key("other"): None})
    with pytest.raises(ValueError, match="has fps 10, requested 30; .*set the recorder's `fps`"):
        _sink(tmp_path, fps=30)
    with pytest.raises(ValueError, match=r"`observation.state` has names \['a', 'b'\], requested \['b', 'a'\]"):
        _sink(tmp_path, streams={**STREAMS, constants.STATE: ["b", "a"]})
    # The same set-up appends (and the refusals released the root); the dataset's shapes win over the new ones,
    # so a camera that changed resolution is found by the recorder.
    sink = _sink(tmp_path)
    assert sink.open({**SHAPES, CAM: (32, 32, 3)}) == SHAPES
    sink.close()


def test_lerobot_sink_second_sink_on_the_same_fresh_root_is_refused(tmp_path):
    first = _sink(tmp_path)
    with pytest.raises(DatasetLockedError, match="another process or writer"):
        _sink(tmp_path)
    first.close()
    _sink(tmp_path).close()  # released by close()


@pytest.mark.parametrize(
    "change, match",
    [
        ({"dataset_name": "../up"}, "`dataset_name`"),
        ({"dataset_name": " "}, "`dataset_name`"),
        ({"root": ""}, "`root` is empty"),
        ({"max_queue_s": float("nan")}, "`max_queue_s` is nan"),
        ({"max_queue_s": float("inf")}, "`max_queue_s` is inf"),
        ({"video_codec": "mpeg2"}, "`codec`"),
    ],
)
def test_lerobot_sink_config_refuses_bad_values_naming_the_field(tmp_path, change, match):
    with pytest.raises(ValueError, match=match):
        LeRobotSinkConfig(**{"root": str(tmp_path), "dataset_name": "ds", **change})
