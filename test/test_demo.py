"""`vqbet-demo`: checkpoint discovery, wiring a checkpoint to the sim, and a short run end to end."""
import json

import numpy as np
import pytest

from vqbet_ros import constants
from vqbet_ros.demo import main
from vqbet_ros.model.checkpoint_search import find_checkpoint
from vqbet_ros.model.config import FeatureSpec, HeadConfig, PriorConfig, TokenizerConfig, VQBeTConfig
from vqbet_ros.pusht.wiring import CHECKPOINT, wiring


def _tiny_checkpoint(directory, argmax=False, camera=False):
    """Random weights; the state policy sees the block keypoints, the image one the 96x96 camera instead."""
    from vqbet_ros.model.checkpoint import save_checkpoint
    from vqbet_ros.model.policy import VQBeTPolicy

    inputs = {"cameras": {"top": [3, 96, 96]}} if camera else {"low_dim": {"environment_state": 18}}
    spec = FeatureSpec(joint_names=["x", "y"], action_names=["x", "y"], n_obs_steps=2, chunk_size=3, **inputs)
    config = VQBeTConfig(spec=spec, tokenizer=TokenizerConfig(hidden_dim=16, latent_dim=16, codebook_size=4),
                         prior=PriorConfig(n_layer=1, n_head=1, n_embd=16, output_dim=16, block_size=8),
                         heads=HeadConfig(hidden_dim=32, argmax=argmax))
    def box():
        return {"min": np.zeros(2), "max": np.full(2, 512.0)}

    stats = {constants.STATE: box(), constants.ACTION: box()}
    if not camera:
        stats[constants.low_dim_key("environment_state")] = {"min": np.zeros(18), "max": np.full(18, 512.0)}
    save_checkpoint(directory, config, VQBeTPolicy(config), stats)
    return directory


def test_wiring_maps_joints_camera_and_low_dim_to_sim_topics():
    spec = FeatureSpec(cameras={"image": [3, 96, 96]}, joint_names=["x", "y"], action_names=["x", "y"],
                       low_dim={"environment_state": 18, "block": 3})
    params = wiring(spec)
    assert params["joint_name_map"] == ["x:agent_x", "y:agent_y"]
    assert params["cameras.image.topic"] == "/camera/image_raw"
    assert params["low_dim.environment_state.topic"] == "/pusht/keypoints"
    assert params["low_dim.block.topic"] == "/pusht/block_pose"
    assert "joint_name_map" not in wiring(FeatureSpec(joint_names=["agent_x", "agent_y"],
                                                      action_names=["agent_x", "agent_y"]))


def test_wiring_refuses_low_dim_the_sim_cannot_provide():
    spec = FeatureSpec(joint_names=["x", "y"], action_names=["x", "y"], low_dim={"wrench": 6})
    with pytest.raises(ValueError, match="wrench"):
        wiring(spec)


def test_find_checkpoint_names_the_fix_when_none(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("vqbet_ros.model.checkpoint_search.REPO_ROOT", tmp_path)
    with pytest.raises(FileNotFoundError, match="--checkpoint"):
        find_checkpoint(None, CHECKPOINT)
    with pytest.raises(FileNotFoundError, match="`checkpoint:=DIR`"):
        find_checkpoint(None, CHECKPOINT, option="checkpoint:=")
    (tmp_path / "models" / "other").mkdir(parents=True)
    (tmp_path / "models" / "other" / "config.yaml").write_text("{}")
    (tmp_path / "models" / "pusht_state").mkdir()
    (tmp_path / "models" / "pusht_state" / "config.yaml").write_text("{}")
    assert find_checkpoint(None, CHECKPOINT).name == "pusht_state"


@pytest.mark.parametrize("camera", [False, True], ids=["state", "image"])
def test_demo_runs_through_ros_step_for_step_like_vqbet_eval(tmp_path, camera):
    """With deterministic codes (heads.argmax) the ROS loop must reproduce vqbet-eval's rollouts exactly: same
    seeds, same observation at every step, same temporal ensembling, same actions; any lag or misaligned step
    in the sim/policy lockstep changes the coverage."""
    pytest.importorskip("rclpy")
    pytest.importorskip("gym_pusht")
    import torch

    from vqbet_ros.training.evaluate import main as eval_main

    torch.manual_seed(0)
    checkpoint = _tiny_checkpoint(tmp_path / "ckpt", argmax=not camera, camera=camera)
    summary_path, video, eval_path = tmp_path / "summary.json", tmp_path / "demo.mp4", tmp_path / "eval.json"
    code = main(["--checkpoint", str(checkpoint), "--episodes", "2", "--max-steps", "40", "--device", "cpu",
                 "--video", str(video), "--json", str(summary_path), "--quiet"])
    assert code == 0
    summary = json.loads(summary_path.read_text())
    episodes = summary["per_episode"]
    assert summary["episodes"] == 2 and [e["seed"] for e in episodes] == [100000, 100001]
    assert all(e["steps"] == 40 and not e["timed_out"] for e in episodes)
    assert summary["decision_latency_ms"]["n"] >= 80 and summary["lockstep_timeouts"] == 0
    assert video.stat().st_size > 1000
    inputs = set(summary["policy_inputs"])
    assert "/joint_states" in inputs
    if camera:  # what the camera sees and the joint states; no block pose, keypoints or status
        assert "/camera/image_raw" in inputs and not any(t.startswith("/pusht/") for t in inputs), inputs
    else:
        assert "/pusht/keypoints" in inputs

    assert eval_main(["--checkpoint", str(checkpoint), "--episodes", "2", "--max-steps", "40",
                      "--output", str(eval_path)]) == 0
    reference = json.loads(eval_path.read_text())["episodes"]
    for ros, gym in zip(episodes, reference):
        assert ros["seed"] == gym["seed"]
        assert ros["final_coverage"] == pytest.approx(gym["final_coverage"], abs=1e-4)  # float32 vs float64 normalisation
        assert ros["max_coverage"] == pytest.approx(gym["max_coverage"], abs=1e-4)  # float32 vs float64 normalisation


def test_demo_stays_off_the_shells_ros_domain_unless_asked(tmp_path, ros_context):
    """The demo's sim publishes `/joint_states` and its policy commands the arm's topics: by default it runs on
    a domain no process here uses, so a robot on the shell's domain (ROS_DOMAIN_ID) never hears it."""
    pytest.importorskip("rclpy")
    pytest.importorskip("gym_pusht")
    import os
    import threading

    from rclpy.executors import SingleThreadedExecutor
    from rclpy.node import Node
    from sensor_msgs.msg import JointState

    checkpoint = _tiny_checkpoint(tmp_path / "ckpt", argmax=True)
    robot_side = Node("robot_side", context=ros_context)
    heard = []
    robot_side.create_subscription(JointState, "/joint_states", heard.append, 100)
    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(robot_side)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    run = ["--checkpoint", str(checkpoint), "--episodes", "1", "--max-steps", "10", "--device", "cpu", "--no-video",
           "--quiet"]
    try:
        assert main(run) == 0
        assert heard == []
        assert main([*run, "--ros-domain", os.environ["ROS_DOMAIN_ID"]]) == 0  # asked: the shell's domain
        assert len(heard) >= 10
    finally:
        executor.shutdown()
        robot_side.destroy_node()
    assert main([*run, "--ros-domain", "300"]) == 2
