"""Direct zarr loading of the PushT replay buffer for state-based training."""
import numpy as np
import pytest

from vqbet_ros import constants
from vqbet_ros.data.zarr_replay import episode_ranges_from_ends, load_pusht_zarr, load_zarr_replay

PUSHT = "external/pusht_cchi_v7_replay.zarr"


def test_load_pusht_zarr_maps_keys_like_the_official_state_obs(shared_dir):
    arrays, ranges = load_pusht_zarr(shared_dir / PUSHT)
    raw, _ = load_zarr_replay(shared_dir / PUSHT, ["state", "keypoint", "action"])
    assert len(ranges) == 206 and ranges[-1][1] == 25650
    np.testing.assert_array_equal(arrays[constants.STATE], raw["state"][:, :2])
    np.testing.assert_array_equal(arrays[constants.ENV_STATE][:, 2:4], raw["keypoint"][:, 1])
    assert arrays[constants.ENV_STATE].shape == (25650, 18)
    assert arrays[constants.ACTION].dtype == np.float32


def test_load_pusht_zarr_images_become_uint8_channels_first(shared_dir):
    arrays, ranges = load_pusht_zarr(shared_dir / PUSHT, with_images=True, max_episodes=1)
    raw, _ = load_zarr_replay(shared_dir / PUSHT, ["img"], max_episodes=1)
    images = arrays[constants.image_key("image")]
    assert ranges == [(0, 161)] and images.shape == (161, 3, 96, 96) and images.dtype == np.uint8
    np.testing.assert_array_equal(images.transpose(0, 2, 3, 1), raw["img"].astype(np.uint8))


def test_episode_ranges_from_ends_are_end_exclusive():
    assert episode_ranges_from_ends(np.array([3, 5])) == [(0, 3), (3, 5)]


def test_load_zarr_replay_lists_available_keys(shared_dir):
    with pytest.raises(KeyError, match="available keys.*keypoint"):
        load_zarr_replay(shared_dir / PUSHT, ["nope"])


def test_load_zarr_replay_refuses_non_replay_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match="meta/episode_ends"):
        load_zarr_replay(tmp_path)
