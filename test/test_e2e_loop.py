"""The whole product loop at small scale, through ROS 2: record -> train -> deploy on the PushT sim.

1. record: the PushT sim (fast mode, /clock) + the replay teleop (human demos from the zarr) -> the recorder
   node -> a LeRobot v3 dataset of 2 short episodes (camera + joint state + action);
2. train: `vqbet-train` for a few steps on camera + joint state, tiny model -> a checkpoint directory;
3. deploy: the policy node with that checkpoint drives the sim for some steps.
Each stage asserts what the next one needs: frames and values recorded, a checkpoint that loads, commands
that move the agent.
"""
import numpy as np
import pytest

pytest.importorskip("rclpy")
pytest.importorskip("gym_pusht")
pytest.importorskip("zarr")

from rclpy.lifecycle import TransitionCallbackReturn  # noqa: E402
from rclpy.node import Node  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from std_srvs.srv import Trigger  # noqa: E402

from ros_spin import Spinner, wait_for  # noqa: E402
from training_fixtures import train_tiny  # noqa: E402
from vqbet_ros import constants  # noqa: E402
from vqbet_ros.nodes.pusht_sim_node import PushTSimNode  # noqa: E402
from vqbet_ros.pusht.demo_replay import PushTDemos  # noqa: E402

EPISODES = [0, 1]
STEPS = 20  # demo steps replayed per episode
DRIVE_STEPS = 12  # policy-driven sim steps


def _params(**values):
    return [Parameter(k, value=v) for k, v in values.items()]


def record(context, zarr, root, episodes=EPISODES, steps=STEPS, **recorder_params):
    from vqbet_ros.nodes.recorder_node import RecorderNode
    from vqbet_ros.nodes.replay_teleop_node import ReplayTeleopNode

    sim = PushTSimNode(context=context, parameter_overrides=_params(mode="fast", first_episode_at_start=False))
    recorder = RecorderNode(context=context, parameter_overrides=_params(
        root=str(root), dataset_name="pusht_ros", task="Push the T onto the target.", robot_type="pusht_sim",
        fps=10, camera_names=["top"], **{"cameras.top.topic": "/camera/image_raw"}, joint_states_topic="/joint_states",
        action_topic="/pusht/joint_trajectory", action_type="joint_trajectory", joint_names=["agent_x", "agent_y"],
        action_max_age_s=0.25, video_codec="libx264", video_preset="ultrafast", use_sim_time=True,
        **recorder_params))
    assert recorder.trigger_configure() == TransitionCallbackReturn.SUCCESS
    assert recorder.trigger_activate() == TransitionCallbackReturn.SUCCESS
    teleop = ReplayTeleopNode(context=context, parameter_overrides=_params(
        zarr_path=str(zarr), episodes=episodes, max_steps=steps,
        start_episode_service="recorder/start_episode", stop_episode_service="recorder/stop_episode"))
    spinner = Spinner(context, [sim, recorder, teleop])
    try:
        wait_for(lambda: teleop.finished, 60.0, "the replay of the demos")
        assert teleop.replayed == episodes
    finally:
        recorder.trigger_deactivate()  # saves what is still open
        recorder.trigger_cleanup()  # waits for every save
        spinner.stop()
        for node in (teleop, recorder, sim):
            node.destroy_node()


def drive(context, checkpoint):
    from vqbet_ros.nodes.policy_node import PolicyNode

    sim = PushTSimNode(context=context, parameter_overrides=_params(mode="fast", first_episode_at_start=False, seed=3))
    policy = PolicyNode(context=context, parameter_overrides=_params(
        checkpoint=str(checkpoint), use_sim_time=True, enable_control=True, device="cpu", warmup_steps=1,
        trajectory_topic="/pusht/joint_trajectory", joint_states_topic="/joint_states",
        **{"cameras.top.topic": "/camera/image_raw"}))
    client_node = Node("e2e_client", context=context)
    reset = client_node.create_client(Trigger, "pusht_sim/reset")
    spinner = Spinner(context, [sim, policy, client_node])
    try:
        assert policy.trigger_configure() == TransitionCallbackReturn.SUCCESS
        wait_for(lambda: policy.get_clock().now().nanoseconds > 0, 10.0, "the sim clock at the policy")
        assert policy.trigger_activate() == TransitionCallbackReturn.SUCCESS
        wait_for(lambda: sim.count_publishers("/pusht/joint_trajectory") > 0
                 and sim.count_subscribers("/camera/image_raw") > 0, 10.0, "the policy's topics")
        assert reset.wait_for_service(timeout_sec=10.0)
        future = reset.call_async(Trigger.Request())
        wait_for(future.done, 10.0, "the sim's reset")
        start = sim.robot.agent_xy.copy()
        # the sim's steps and the policy's decisions are counted in different callbacks: wait for both
        wait_for(lambda: sim.robot.step_index >= DRIVE_STEPS and policy.runtime.decisions >= DRIVE_STEPS, 60.0,
                 "the policy to drive the sim")
        moved = float(np.linalg.norm(sim.robot.agent_xy - start))
        return moved, policy.runtime.decisions, sim.lockstep_timeouts
    finally:
        policy.trigger_deactivate()
        spinner.stop()
        for node in (client_node, policy, sim):
            node.destroy_node()


def test_e2e_record_train_deploy_through_ros(ros_context, shared_dir, tmp_path):
    zarr = shared_dir / "external/pusht_cchi_v7_replay.zarr"

    # 1. record the human demos through ROS
    record(ros_context, zarr, tmp_path / "data")
    from vqbet_ros.data.lerobot_reader import LeRobotDataset

    dataset = LeRobotDataset(tmp_path / "data" / "pusht_ros")
    assert dataset.num_episodes == len(EPISODES) and dataset.fps == 10
    lengths = [b - a for a, b in dataset.episode_ranges]
    assert all(STEPS <= n <= STEPS + 3 for n in lengths), lengths
    state = dataset.read_column(constants.STATE)
    action = dataset.read_column(constants.ACTION)
    demos = PushTDemos(zarr)
    for (a, b), index in zip(dataset.episode_ranges, EPISODES):
        demo = demos.episode(index, max_steps=STEPS)
        # An episode may open with a frame of the teleop's pre-roll hold (the agent at rest where the demo
        # starts): the recorder's start and the first command race by one step in lockstep.
        skip = 1 if np.allclose(action[a], demo.initial_state[:2]) else 0
        recorded = action[a + skip:b][: len(demo)]
        # the recorded commands are the human's, in order ...
        assert len(recorded) >= STEPS - 1
        np.testing.assert_allclose(recorded, demo.actions[: len(recorded)], atol=1e-3)
        # ... each paired with the joint state it was commanded from (the demo's agent position before it)
        np.testing.assert_allclose(state[a + skip:b][: len(recorded)], demo.states[: len(recorded), :2], atol=0.5)
    frames = dataset.decode_video(constants.image_key("top"), 0)
    assert frames.shape == (lengths[0], 96, 96, 3) and frames.std() > 10

    # 2. train a tiny policy on camera + joint state
    checkpoint = train_tiny(tmp_path / "data" / "pusht_ros", tmp_path / "run", spec={
        "cameras": {"top": [3, 96, 96]}, "joint_names": ["agent_x", "agent_y"],
        "action_names": ["agent_x", "agent_y"], "fps": 10.0, "n_obs_steps": 2, "chunk_size": 3},
        vision={"feature_dim": 16, "num_keypoints": 8})
    from vqbet_ros.model.checkpoint import load_checkpoint

    loaded = load_checkpoint(checkpoint)
    assert list(loaded.config.spec.cameras) == ["top"] and loaded.config.spec.joint_names == ["agent_x", "agent_y"]

    # 3. the policy node drives the sim
    moved, decisions, timeouts = drive(ros_context, checkpoint)
    assert decisions >= DRIVE_STEPS and timeouts == 0
    assert moved > 1.0, f"the agent moved only {moved:.2f} px under the policy's commands"


def test_e2e_recorder_records_pusht_low_dim_topics_in_step(ros_context, shared_dir, tmp_path):
    """Extra low-dim observations through ROS: keypoints (Float64MultiArray, no header) and the block pose
    (PoseStamped) land in the same frame as each other and as the joint states."""
    from vqbet_ros.data.lerobot_reader import LeRobotDataset
    from vqbet_ros.pusht.robot import block_keypoints

    zarr = shared_dir / "external/pusht_cchi_v7_replay.zarr"
    # In lockstep the sim time of sample_delay_s passes in a few ms of wall time: allow 3 steps, so a tick is
    # sampled only after its messages had time to be handled on a loaded machine.
    record(ros_context, zarr, tmp_path / "data", episodes=[5], steps=30,  # the T moves from step 18 on
           sample_delay_s=0.3, low_dim_names=["environment_state", "block_pose"],
           **{"low_dim.environment_state.topic": "/pusht/keypoints",
              "low_dim.block_pose.topic": "/pusht/block_pose_stamped", "low_dim.block_pose.type": "pose_stamped"})
    dataset = LeRobotDataset(tmp_path / "data" / "pusht_ros")
    keypoints = dataset.read_column(constants.low_dim_key("environment_state"))
    pose = dataset.read_column(constants.low_dim_key("block_pose"))
    action = dataset.read_column(constants.ACTION)
    assert keypoints.shape[1:] == (18,) and pose.shape[1:] == (7,) and len(pose) >= 30
    yaw = 2 * np.arctan2(pose[:, 5], pose[:, 6])
    expected = np.stack([block_keypoints(np.array([x, y, a])).reshape(-1) for (x, y), a in zip(pose[:, :2], yaw)])
    np.testing.assert_allclose(keypoints, expected, atol=0.05)  # the same instant (float32 storage)
    demo = PushTDemos(zarr).episode(5, max_steps=30)
    skip = 1 if np.allclose(action[0], demo.initial_state[:2]) else 0
    np.testing.assert_allclose(pose[skip:skip + 30, :2], demo.states[:, 2:4], atol=0.5)
