"""Replaying the human PushT demos in the sim reproduces them."""
import numpy as np
import pytest

pytest.importorskip("gym_pusht")
pytest.importorskip("zarr")

from vqbet_ros.pusht.demo_replay import PushTDemos  # noqa: E402
from vqbet_ros.pusht.robot import PushTRobot  # noqa: E402


@pytest.fixture(scope="module")
def demos(shared_dir):
    return PushTDemos(shared_dir / "external/pusht_cchi_v7_replay.zarr")


def test_demos_have_episodes_with_states_and_actions(demos):
    assert demos.num_episodes == 206
    ep = demos.episode(1)
    assert ep.states.shape == (118, 5) and ep.actions.shape == (118, 2)
    assert len(demos.episode(0, max_steps=20)) == 20


def test_replay_reproduces_demo_block_trajectory(demos):
    ep = demos.episode(1)
    robot = PushTRobot()
    obs = robot.reset(state=ep.initial_state)
    errors = []
    for k in range(len(ep)):
        errors.append(np.abs(obs.block_pose[:2] - ep.states[k, 2:4]).max())
        obs = robot.step(ep.actions[k])
    assert max(errors) < 0.01
    assert obs.coverage > 0.85


def test_demos_missing_path_names_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.zarr` does not exist"):
        PushTDemos(tmp_path / "nope.zarr")
    (tmp_path / "empty.zarr").mkdir()
    with pytest.raises(FileNotFoundError, match="expected `meta/episode_ends`"):
        PushTDemos(tmp_path / "empty.zarr")


def test_demos_episode_out_of_range_names_range(demos):
    with pytest.raises(IndexError, match="0..205"):
        demos.episode(206)
