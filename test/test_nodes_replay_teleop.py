"""Replay teleop node: human demos replayed through ROS into the PushT sim, framed by recorder services."""
import time

import numpy as np
import pytest

pytest.importorskip("rclpy")
pytest.importorskip("gym_pusht")
pytest.importorskip("zarr")

from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.node import Node  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from sensor_msgs.msg import JointState  # noqa: E402
from std_srvs.srv import Trigger  # noqa: E402
from trajectory_msgs.msg import JointTrajectory  # noqa: E402

from vqbet_ros.config_io import ConfigError  # noqa: E402
from vqbet_ros.nodes.pusht_sim_node import PushTSimNode  # noqa: E402
from vqbet_ros.nodes.replay_teleop_node import ReplayTeleopNode  # noqa: E402
from vqbet_ros.pusht.demo_replay import PushTDemos  # noqa: E402


def _params(**values):
    return [Parameter(k, value=v) for k, v in values.items()]


def _run(context, teleop_params, timeout_s=30.0):
    sim = PushTSimNode(context=context, parameter_overrides=_params(mode="fast", first_episode_at_start=False))
    fake_recorder = Node("fake_recorder", context=context)
    calls = []

    def service(name):
        def handle(request, response):
            calls.append((name, sim.robot.step_index))
            response.success = True
            return response
        fake_recorder.create_service(Trigger, f"~/{name}", handle)

    service("start_episode")
    service("stop_episode")
    seen = {"commands": [], "joints": []}
    fake_recorder.create_subscription(JointTrajectory, "pusht/joint_trajectory", seen["commands"].append, 100)
    fake_recorder.create_subscription(JointState, "joint_states", seen["joints"].append, 100)
    teleop = ReplayTeleopNode(context=context, parameter_overrides=_params(**teleop_params))
    executor = SingleThreadedExecutor(context=context)
    for node in (sim, fake_recorder, teleop):
        executor.add_node(node)
    deadline = time.monotonic() + timeout_s
    while not teleop.finished and time.monotonic() < deadline:
        executor.spin_once(timeout_sec=0.05)
    final = sim.robot.observe()
    executor.shutdown()
    for node in (teleop, fake_recorder, sim):
        node.destroy_node()
    return teleop, final, calls, sim.lockstep_timeouts, seen


def test_replay_teleop_reproduces_demo_through_ros(ros_context, shared_dir):
    zarr = shared_dir / "external/pusht_cchi_v7_replay.zarr"
    demo = PushTDemos(zarr).episode(6)  # 69 steps
    teleop, final, _, timeouts, seen = _run(ros_context, dict(zarr_path=str(zarr), episodes=[6]))
    assert teleop.finished and teleop.replayed == [6]
    assert final.step == len(demo) and timeouts == 0
    # Command k is stamped with observation k (what a recorder pairs it with) and commands demo action k.
    stamps = [(m.header.stamp.sec, m.header.stamp.nanosec) for m in seen["joints"]]
    commands = seen["commands"]
    assert len(commands) == len(demo)
    assert [(m.header.stamp.sec, m.header.stamp.nanosec) for m in commands] == stamps[:len(demo)]
    np.testing.assert_allclose([m.points[0].positions for m in commands], demo.actions)
    np.testing.assert_allclose(final.agent_xy, demo.actions[-1], atol=15.0)
    assert final.coverage > 0.85  # the human pushed the T onto the goal


def test_replay_teleop_frames_each_demo_with_recorder_services(ros_context, shared_dir):
    zarr = shared_dir / "external/pusht_cchi_v7_replay.zarr"
    teleop, final, calls, _, _ = _run(ros_context, dict(
        zarr_path=str(zarr), num_episodes=2, max_steps=8, message_type="float64_multiarray",
        start_episode_service="fake_recorder/start_episode", stop_episode_service="fake_recorder/stop_episode"))
    assert teleop.replayed == [0, 1]
    # start after the one-step pre-roll hold and before the first demo command, stop after the observation
    # that follows the 8th demo step
    assert calls == [("start_episode", 1), ("stop_episode", 9), ("start_episode", 1), ("stop_episode", 9)]


@pytest.mark.parametrize("params, expected", [
    ({"episodes": [999]}, "parameter `episodes` asks for demo episode 999; `{zarr}` has episodes 0..205"),
    ({"num_episodes": 300}, "parameter `num_episodes` asks for demo episode 206"),
    ({"episodes": [0, -1]}, "`episodes` entry is -1; expected an integer >= 0"),
    ({"max_steps": 2.5}, "parameter `max_steps` is 2.5; expected an integer"),
    ({"status_topic": "pusht status"}, "parameter `status_topic` is 'pusht status', not a valid topic name"),
    ({"stop_episode_service": "/recorder/stop episode"}, "parameter `stop_episode_service`"),
])
def test_replay_teleop_refuses_bad_parameters_naming_them(ros_context, shared_dir, params, expected):
    zarr = shared_dir / "external/pusht_cchi_v7_replay.zarr"
    with pytest.raises(ConfigError) as refusal:
        ReplayTeleopNode(context=ros_context, parameter_overrides=_params(zarr_path=str(zarr), **params))
    assert expected.format(zarr=zarr) in str(refusal.value)
