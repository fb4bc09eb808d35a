"""PushT as a robot: reset, control, sensing, and agreement with gym_pusht and the human demos."""
import numpy as np
import pytest

pytest.importorskip("gym_pusht")

from vqbet_ros.pusht.robot import (  # noqa: E402
    IMAGE_SIZE, JOINT_NAMES, LOW_DIM_SIZES, PushTRobot, block_keypoints, official_initial_state,
)


@pytest.fixture(scope="module")
def robot():
    robot = PushTRobot()
    yield robot
    robot.close()


def test_observe_shapes_and_types(robot):
    obs = robot.reset(seed=3)
    assert JOINT_NAMES == ("agent_x", "agent_y")
    assert obs.image.shape == (IMAGE_SIZE, IMAGE_SIZE, 3) and obs.image.dtype == np.uint8
    assert obs.agent_xy.shape == (2,)
    for name, size in LOW_DIM_SIZES.items():
        assert obs.low_dim(name).shape == (size,)
    assert obs.time_s == 0.0 and obs.step == 0


def test_reset_seed_matches_gym_make(robot):
    import gymnasium as gym

    env = gym.make("gym_pusht/PushT-v0", obs_type="state")
    state, _ = env.reset(seed=42)
    obs = robot.reset(seed=42)
    np.testing.assert_allclose(obs.agent_xy, state[:2], atol=1e-6)
    np.testing.assert_allclose(obs.block_pose, state[2:], atol=1e-6)
    env.close()


def test_step_moves_agent_towards_target_and_advances_clock(robot):
    robot.reset(state=[100, 100, 300, 300, 0.0])
    for _ in range(10):
        obs = robot.step(np.array([200.0, 100.0]))
    assert obs.agent_xy[0] > 180.0 and abs(obs.agent_xy[1] - 100.0) < 5.0
    assert obs.step == 10 and obs.time_s == pytest.approx(1.0)


def test_reset_to_state_puts_block_exactly_at_pose(robot):
    obs = robot.reset(state=[50, 60, 222.0, 381.6, 3.0])
    np.testing.assert_allclose(obs.block_pose, [222.0, 381.6, 3.0], atol=1e-3)
    np.testing.assert_allclose(obs.agent_xy, [50, 60], atol=1e-6)


def test_block_keypoints_match_demo_zarr(shared_dir):
    zarr = pytest.importorskip("zarr")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        root = zarr.open_group(str(shared_dir / "external/pusht_cchi_v7_replay.zarr"), mode="r")
        states = np.asarray(root["data/state"][:2000], dtype=float)
        keypoints = np.asarray(root["data/keypoint"][:2000], dtype=float)
    predicted = np.stack([block_keypoints(s[2:]) for s in states])
    errors = np.abs(predicted - keypoints).max(axis=(1, 2))
    assert np.median(errors) < 0.01 and np.percentile(errors, 99) < 0.1


def test_success_when_block_on_goal_ends_a_gym_episode(robot):
    obs = robot.reset(state=[50, 50, 256, 256, np.pi / 4])  # the goal pose
    assert obs.coverage > 0.95 and obs.success and robot.done


def test_official_protocol_never_ends_early_and_runs_302_steps():
    robot = PushTRobot(protocol="official", render_camera=False)
    robot.reset(state=[50, 50, 256, 256, np.pi / 4])  # starts on the goal
    steps = 0
    while not robot.done:
        obs = robot.step(np.array([50.0, 50.0]))  # the agent stays in its corner, the T stays on the goal
        steps += 1
    assert steps == 302 and obs.success
    robot.close()


@pytest.mark.parametrize("seed", [0, 100000, 100037, 424242])
def test_official_reset_matches_the_public_envs_rule(seed):
    """The public VQ-BeT env (examples/pusht_env.py): draws from np.random.RandomState(seed) in the order agent
    x, y (randint 50..449), block x, y (randint 100..399), angle (randn * 2 pi - pi); sets the block's angle
    before its position (legacy=False), then runs one 10 ms physics step. Rebuilt here by hand on a fresh
    gym_pusht env and compared with the robot's reset."""
    from gym_pusht.envs.pusht import PushTEnv

    rs = np.random.RandomState(seed=seed)
    agent = [rs.randint(50, 450), rs.randint(50, 450)]
    block = [rs.randint(100, 400), rs.randint(100, 400)]
    angle = rs.randn() * 2 * np.pi - np.pi
    env = PushTEnv(obs_type="state")
    env.reset(seed=0)
    env.agent.position = agent
    env.block.angle = angle
    env.block.position = block
    env.space.step(env.dt)
    robot = PushTRobot(protocol="official", render_camera=False)
    obs = robot.reset(seed=seed)
    np.testing.assert_allclose(obs.agent_xy, np.array(env.agent.position), atol=1e-6)
    np.testing.assert_allclose(obs.block_pose[:2], np.array(env.block.position), atol=1e-6)
    assert np.cos(obs.block_pose[2] - env.block.angle) == pytest.approx(1.0)
    np.testing.assert_allclose(official_initial_state(seed), [*agent, *block, angle])
    # Unlike gym_pusht's legacy order, the block's origin is exactly the drawn position.
    np.testing.assert_allclose(obs.block_pose[:2], block, atol=1e-6)
    env.close()
    robot.close()


def test_robot_without_camera_never_renders(monkeypatch):
    from gym_pusht.envs.pusht import PushTEnv

    calls = []
    original = PushTEnv._render
    monkeypatch.setattr(PushTEnv, "_render", lambda self, *a, **k: calls.append(1) or original(self, *a, **k))
    robot = PushTRobot(protocol="official", render_camera=False)
    robot.reset(seed=1)
    obs = robot.step(np.array([100.0, 100.0]))
    assert obs.image is None and calls == []
    robot.close()


def test_reset_refuses_bad_state(robot):
    with pytest.raises(ValueError, match="state"):
        robot.reset(state=[1, 2, 3])
