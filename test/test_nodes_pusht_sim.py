"""The PushT sim node in real rclpy: its topics, command inputs, reset service and fast /clock mode."""
import math
import time

import numpy as np
import pytest

pytest.importorskip("rclpy")
pytest.importorskip("gym_pusht")

from builtin_interfaces.msg import Duration  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.node import Node  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from rosgraph_msgs.msg import Clock  # noqa: E402
from sensor_msgs.msg import Image, JointState  # noqa: E402
from std_msgs.msg import Float64MultiArray  # noqa: E402
from std_srvs.srv import Trigger  # noqa: E402
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint  # noqa: E402

from sim_probe import SpinningProbe, closing_factory  # noqa: E402
from vqbet_ros.nodes.pusht_sim_node import COMMAND_QOS, PushTSimNode  # noqa: E402
from vqbet_ros.pusht.robot import PushTRobot  # noqa: E402
from vqbet_ros.pusht.wiring import STATUS_FIELDS  # noqa: E402


class Probe(SpinningProbe):
    """A test node recording the sim's outputs, with helpers to command it."""

    def __init__(self, context, **sim_params):
        overrides = [Parameter(k, value=v) for k, v in sim_params.items()]
        self.sim = PushTSimNode(context=context, parameter_overrides=overrides)
        self.node = Node("probe", context=context)
        self.executor = SingleThreadedExecutor(context=context)
        self.executor.add_node(self.sim)
        self.executor.add_node(self.node)
        self.images, self.joints, self.status, self.clock, self.keypoints = [], [], [], [], []
        self.node.create_subscription(Image, "camera/image_raw", self.images.append, 10)
        self.node.create_subscription(JointState, "joint_states", self.joints.append, 10)
        self.node.create_subscription(Float64MultiArray, "pusht/status", self.status.append, 10)
        self.node.create_subscription(Float64MultiArray, "pusht/keypoints", self.keypoints.append, 10)
        self.node.create_subscription(Clock, "/clock", self.clock.append, 10)
        self.traj_pub = self.node.create_publisher(JointTrajectory, "pusht/joint_trajectory", COMMAND_QOS)
        self.cmd_pub = self.node.create_publisher(Float64MultiArray, "pusht/commands", COMMAND_QOS)
        self.reset_client = self.node.create_client(Trigger, "pusht_sim/reset")

    def wait_matched(self):
        assert self.spin_until(lambda: self.traj_pub.get_subscription_count() > 0
                               and self.cmd_pub.get_subscription_count() > 0
                               and self.sim.count_subscribers("camera/image_raw") > 0)

    def close(self):
        self.executor.shutdown()
        self.sim.destroy_node()
        self.node.destroy_node()


@pytest.fixture
def probe_factory(ros_context):
    yield from closing_factory(lambda **params: Probe(ros_context, **params))


def test_sim_node_publishes_rgb8_image_joints_and_status_with_same_stamp(probe_factory):
    probe = probe_factory(mode="realtime")
    assert probe.spin_until(lambda: len(probe.images) >= 3 and len(probe.joints) >= 3 and probe.status)
    image = probe.images[-1]
    assert (image.encoding, image.height, image.width, image.step) == ("rgb8", 96, 96, 288)
    assert len(image.data) == 96 * 96 * 3 and image.header.stamp.sec > 0
    stamps = {(m.header.stamp.sec, m.header.stamp.nanosec) for m in probe.images}
    joint_stamps = {(m.header.stamp.sec, m.header.stamp.nanosec) for m in probe.joints}
    assert stamps & joint_stamps
    assert list(probe.joints[-1].name) == ["agent_x", "agent_y"]
    assert len(probe.status[-1].data) == len(STATUS_FIELDS)
    assert probe.status[-1].layout.dim[0].label == ",".join(STATUS_FIELDS)
    assert len(probe.keypoints[-1].data) == 18


def test_sim_node_follows_float64_multiarray_target(probe_factory):
    probe = probe_factory(mode="realtime", initial_state=[100.0, 100.0, 300.0, 300.0, 0.0], first_episode_at_start=False)
    probe.wait_matched()
    probe.reset()
    probe.cmd_pub.publish(Float64MultiArray(data=[200.0, 100.0]))
    assert probe.spin_until(lambda: probe.joints and probe.joints[-1].position[0] > 180.0)
    assert abs(probe.joints[-1].position[1] - 100.0) < 5.0


def test_sim_node_reset_uses_seed_plus_episode(probe_factory):
    probe = probe_factory(mode="realtime", seed=7, first_episode_at_start=False)
    probe.wait_matched()
    response = probe.reset()
    assert response.success and "seed 7" in response.message
    expected = PushTRobot(protocol="official").reset(seed=7).agent_xy  # the node's default protocol
    probe.joints.clear()
    assert probe.spin_until(lambda: probe.joints)
    np.testing.assert_allclose(probe.joints[0].position, expected, atol=1e-6)
    assert "seed 8" in probe.reset().message


def _s(t):
    return t.sec + t.nanosec * 1e-9


def _released(probe, stamp):
    """The clock has advanced to (1 us past) the observation stamped `stamp`."""
    return abs(_s(probe.clock[-1].clock) - _s(stamp) - 1e-6) < 1e-7


def _chunk_from(stamp, n=5):
    msg = JointTrajectory(joint_names=["agent_y", "agent_x"])  # any order: matched by name
    msg.header.stamp = stamp
    for k in range(n):
        msg.points.append(JointTrajectoryPoint(positions=[100.0, 100.0 + 30.0 * (k + 1)],
                                               time_from_start=Duration(nanosec=100_000_000 * (k + 1))))
    return msg


def _fast_probe_after_reset(probe_factory, lockstep: str):
    """A fast-mode sim reset to a known state whose first observation has been released."""
    probe = probe_factory(mode="fast", lockstep=lockstep, first_episode_at_start=False,
                          initial_state=[100.0, 100.0, 300.0, 300.0, 0.0])
    probe.wait_matched()
    probe.reset()
    assert probe.spin_until(lambda: probe.joints and _released(probe, probe.joints[-1].header.stamp))
    return probe


def test_sim_node_fast_mode_executes_chunk_by_time_in_lockstep(probe_factory):
    probe = _fast_probe_after_reset(probe_factory, lockstep="chunk")
    stamp0 = probe.joints[-1].header.stamp
    probe.joints.clear()
    # A chunk stamped at the observation time: point k is the target of the k-th step after it.
    probe.traj_pub.publish(_chunk_from(stamp0))
    assert probe.spin_until(lambda: len(probe.joints) >= 5)
    xs = [m.position[0] for m in probe.joints[:5]]
    assert all(b > a for a, b in zip(xs, xs[1:])) and xs[-1] > 200.0
    # Clock ticks in 0.1 s steps up to the stamp of the last observation; the chunk is used up, so the sim
    # waits for the next one.
    stamp = probe.joints[4].header.stamp
    assert probe.spin_until(lambda: _released(probe, stamp))
    ticks = [_s(c.clock) for c in probe.clock]
    np.testing.assert_allclose(np.diff(ticks[-5:]), 0.1, atol=1e-6)
    probe.spin_until(lambda: False, timeout_s=0.5)
    assert len(probe.joints) == 5 and probe.sim.lockstep_timeouts == 0


def test_sim_node_fast_mode_each_step_waits_for_a_command_per_step(probe_factory):
    probe = _fast_probe_after_reset(probe_factory, lockstep="each_step")
    for _ in range(3):  # a policy deciding every step: one chunk per observation, stamped with the clock
        probe.traj_pub.publish(_chunk_from(probe.clock[-1].clock))
        count = len(probe.joints)
        assert probe.spin_until(lambda: len(probe.joints) == count + 1 and
                                _released(probe, probe.joints[-1].header.stamp))
        probe.spin_until(lambda: False, timeout_s=0.2)
        assert len(probe.joints) == count + 1
    xs = [m.position[0] for m in probe.joints[-3:]]
    assert xs[2] > xs[0] > 100.0 and probe.sim.lockstep_timeouts == 0


def test_sim_node_refuses_trajectory_with_unknown_joints(probe_factory):
    probe = probe_factory(mode="realtime", initial_state=[100.0, 100.0, 300.0, 300.0, 0.0], first_episode_at_start=False)
    probe.wait_matched()
    probe.reset()
    msg = JointTrajectory(joint_names=["shoulder", "elbow"])
    msg.points.append(JointTrajectoryPoint(positions=[400.0, 400.0], time_from_start=Duration(nanosec=100_000_000)))
    probe.traj_pub.publish(msg)
    probe.spin_until(lambda: False, timeout_s=0.6)
    np.testing.assert_allclose(probe.joints[-1].position, [100.0, 100.0], atol=1.0)


def test_sim_node_refuses_initial_state_of_wrong_length(probe_factory):
    probe = probe_factory(mode="realtime")
    result = probe.sim.set_parameters([Parameter("initial_state", Parameter.Type.DOUBLE_ARRAY, [1.0, 2.0])])
    assert not result[0].successful and "5 values" in result[0].reason


def test_sim_node_accepts_integers_for_float_parameters(probe_factory):
    """`lockstep_timeout_s: 1` and an integer `initial_state`, as a shell or a YAML file writes them."""
    probe = probe_factory(mode="realtime", initial_state=[120, 110, 300, 300, 0], lockstep_timeout_s=1,
                          obs_settle_s=0, first_episode_at_start=False)
    probe.wait_matched()
    assert "initial_state [120.0, 110.0, 300.0, 300.0, 0.0]" in probe.reset().message
    assert probe.spin_until(lambda: len(probe.joints) >= 2)
    np.testing.assert_allclose(probe.joints[-1].position, [120.0, 110.0], atol=1.0)
    result = probe.sim.set_parameters([Parameter("lockstep_timeout_s", value=3)])
    assert result[0].successful, result[0].reason


@pytest.mark.parametrize("name, value, expected", [
    ("seed", "seven", "parameter `seed` is 'seven'; expected an integer"),
    ("seed", -3, "parameter `seed` is -3; expected an integer in [0, 2147483647]"),
    ("lockstep_timeout_s", math.nan, "parameter `lockstep_timeout_s` is nan; expected a number in [0.001, 3600.0]"),
    ("auto_reset", 1, "parameter `auto_reset` is 1; expected true or false"),
    ("initial_state", [1.0, 2.0, 3.0, math.inf, 0.0], "all finite"),
    ("image_size", 128, "`image_size` is read at start-up only"),
])
def test_sim_node_refuses_bad_parameter_change_with_its_reason(probe_factory, name, value, expected):
    probe = probe_factory(mode="realtime", first_episode_at_start=False)
    result = probe.sim.set_parameters([Parameter(name, value=value)])
    assert not result[0].successful and expected in result[0].reason, result[0].reason
    assert probe.reset().success  # the node works on with its previous values


@pytest.mark.parametrize("mode", ["realtime", "fast"])
def test_sim_node_episode_clock_starts_with_the_first_command(probe_factory, mode):
    """A policy still loading loses no step: the sim shows the initial state (and, fast, advances /clock) until
    the first command arrives."""
    step = STATUS_FIELDS.index("step")
    probe = probe_factory(mode=mode, lockstep_timeout_s=0.05)  # first_episode_at_start: episode 0 is ready at start-up
    probe.wait_matched()
    assert probe.spin_until(lambda: len(probe.status) >= 5)
    assert {m.data[step] for m in probe.status} == {0.0}
    if mode == "fast":
        assert len({(c.clock.sec, c.clock.nanosec) for c in probe.clock}) >= 3  # time passes all the same
    probe.cmd_pub.publish(Float64MultiArray(data=[300.0, 100.0]))
    assert probe.spin_until(lambda: probe.status[-1].data[step] >= 1)


def test_sim_node_realtime_steps_at_control_rate_on_a_stamp_grid(probe_factory):
    probe = probe_factory(mode="realtime", initial_state=[100.0, 100.0, 300.0, 300.0, 0.0], first_episode_at_start=False)
    probe.wait_matched()
    probe.reset()
    probe.cmd_pub.publish(Float64MultiArray(data=[300.0, 100.0]))  # keeps it stepping (not done)
    probe.joints.clear()
    wall0 = time.monotonic()
    assert probe.spin_until(lambda: len(probe.joints) >= 8)
    wall_s = time.monotonic() - wall0
    stamps = np.array([_s(m.header.stamp) for m in probe.joints])
    np.testing.assert_allclose(np.diff(stamps), 0.1, atol=1e-6)  # exact grid, whatever the timer jitter
    assert 0.5 < wall_s < 1.5  # about 10 Hz of wall time for 8 steps
