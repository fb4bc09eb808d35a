"""A scripted expert for the SO-101 pick-and-place: what a person moving a leader arm would command. ROS-free.

The expert sees the block once, at the start of the episode (as a teleoperator looks before moving), plans a
path of gripper keyframes in Cartesian space, and turns the path into joint targets for all six joints with
inverse kinematics: damped least squares on MuJoCo's Jacobian of the grasp point (`scene.GRASP_OFFSET_M` in
front of the gripper site) and of the gripper's orientation, pointing the fingers straight down.

Path: from the rest pose to a hover point above the block, down, close the jaws, lift, over a pad, down,
open, up. What varies between episodes, drawn from the episode's seed, so the demonstrations are multimodal:
- which pad the block goes to (left or right, the two valid placements);
- from which side the hover point is approached (an offset left or right of the block);
- the pace (each segment's duration scaled by one factor per episode, and a jitter per segment).
The jaws always close on the pair of the cube's faces nearest the wrist's neutral roll: a function of the
block's pose, not a draw. A random choice between the two nearest pairs turned the wrist ~90 degrees one way
or the other for the same block, and a policy that blends or switches between the two misses the grasp (the
first SO-101 policy missed 29 of 50 grasps, docs/so101.md).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import mujoco
import numpy as np

from vqbet_ros.so101 import scene
from vqbet_ros.so101.robot import HOME_POSITION, quaternion_yaw
from vqbet_ros.so101.scene import ARM_JOINTS, GRASP_OFFSET_M, PAD_CENTERS_M

GRIPPER_OPEN = 1.0  # jaws ~8 cm apart: room around the 4 cm block
GRIPPER_CLOSED = 0.1  # below the 0.46 rad at which the jaws touch the block: the actuator squeezes it
HOVER_HEIGHT_M = 0.10  # grasp point above the table while travelling
GRASP_HEIGHT_M = 0.018  # grasp point height when closing on the block (its centre is at 0.02)
RELEASE_HEIGHT_M = 0.026  # grasp point height when opening over a pad
APPROACH_OFFSET_M = 0.04  # sideways offset of the hover point (approach side)
# Block centre height above which it counts as lifted (it rests at 0.02; held at the hover point it is ~0.10).
LIFTED_BLOCK_Z_M = 0.05


def smoothstep(u: np.ndarray | float):
    """Minimum-jerk blend 0 -> 1 over u in [0, 1] (zero velocity and acceleration at both ends)."""
    u = np.clip(u, 0.0, 1.0)
    return u ** 3 * (10 - 15 * u + 6 * u ** 2)


def down_orientation(yaw: float) -> np.ndarray:
    """Gripper-site rotation (columns x, y, z) with the fingers (site x) pointing down and the jaws closing
    along (cos yaw, sin yaw, 0) (site z)."""
    x = np.array([0.0, 0.0, -1.0])
    z = np.array([math.cos(yaw), math.sin(yaw), 0.0])
    return np.stack([x, np.cross(z, x), z], axis=1)


def grasp_yaw(block_xy: np.ndarray, block_yaw: float) -> float:
    """The jaws' yaw for a block at `block_xy` (x, y) with yaw `block_yaw`: the one of the cube's four
    equivalent yaws nearest the wrist's neutral roll (jaws across the arm's reach direction)."""
    neutral = math.atan2(block_xy[1], block_xy[0]) + math.pi / 2
    return neutral + math.remainder(block_yaw - neutral, math.pi / 2)


class ArmIK:
    """Damped-least-squares inverse kinematics of the grasp point and the gripper orientation over the five
    arm joints, on its own MjData (it never touches the simulation's)."""

    def __init__(self, model: mujoco.MjModel, damping: float = 0.02, rotation_weight: float = 0.2):
        self.model = model
        self.data = mujoco.MjData(model)
        self.damping = damping
        self.rotation_weight = rotation_weight  # metres per radian: how much orientation error counts
        self._qpos = np.array([model.joint(n).qposadr[0] for n in ARM_JOINTS])
        self._dof = np.array([model.joint(n).dofadr[0] for n in ARM_JOINTS])
        self._low, self._high = model.jnt_range[[model.joint(n).id for n in ARM_JOINTS]].T
        self._site = model.site(scene.EE_SITE).id
        self._body = model.site_bodyid[self._site]

    def grasp_pose(self, arm_q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(grasp point (3,), site rotation (3, 3)) for arm joint positions `arm_q` (5,)."""
        self.data.qpos[self._qpos] = arm_q
        mujoco.mj_kinematics(self.model, self.data)
        rotation = self.data.site_xmat[self._site].reshape(3, 3)
        return self.data.site_xpos[self._site] + GRASP_OFFSET_M * rotation[:, 2], rotation.copy()

    def solve(self, arm_q: np.ndarray, position: np.ndarray, rotation: np.ndarray,
              iterations: int = 30, tolerance: float = 1e-4) -> tuple[np.ndarray, float]:
        """(arm joints reaching the pose from `arm_q`, the remaining weighted error)."""
        q = np.array(arm_q, dtype=float)
        jacp, jacr = np.zeros((3, self.model.nv)), np.zeros((3, self.model.nv))
        error = np.inf
        for _ in range(iterations):
            point, current = self.grasp_pose(q)
            rot_error = 0.5 * sum(np.cross(current[:, i], rotation[:, i]) for i in range(3))
            residual = np.concatenate([position - point, self.rotation_weight * rot_error])
            error = float(np.linalg.norm(residual))
            if error < tolerance:
                break
            mujoco.mj_comPos(self.model, self.data)
            mujoco.mj_jac(self.model, self.data, jacp, jacr, point, self._body)
            jac = np.vstack([jacp[:, self._dof], self.rotation_weight * jacr[:, self._dof]])  # (6, 5)
            step = jac.T @ np.linalg.solve(jac @ jac.T + self.damping ** 2 * np.eye(6), residual)
            q = np.clip(q + step, self._low, self._high)
        return q, error


@dataclass(frozen=True)
class Keyframe:
    """Where the expert wants the gripper at `time_s`: grasp point, jaw yaw, gripper joint position."""

    time_s: float
    position: np.ndarray
    yaw: float
    gripper: float


@dataclass(frozen=True)
class ExpertChoice:
    """The episode's draws (see the module docstring)."""

    pad: int
    grasp_yaw: float  # from the block's pose (see `grasp_yaw`), not drawn
    approach_side: float  # +1 from the left (+y), -1 from the right
    pace: float  # segment durations are multiplied by this


class ScriptedExpert:
    """Plans one episode from the block's pose and gives the leader arm's joint targets at any time; grasps
    again when the first grasp missed (`regrasp_if_missed`)."""

    def __init__(self, model: mujoco.MjModel, grasp_attempts: int = 3):
        if grasp_attempts < 1:
            raise ValueError(f"ScriptedExpert(grasp_attempts={grasp_attempts}): expected at least 1")
        self.ik = ArmIK(model)
        self.grasp_attempts = grasp_attempts
        self.choice: ExpertChoice | None = None
        self.attempt = 0  # the grasp being made: 1 for the planned one, 2 and on for grasps again
        self.first_grasp_time_s = 0.0  # when the planned grasp closes the jaws (a regrasp does not move it)
        self._keyframes: list[Keyframe] = []
        self._rng = np.random.default_rng(0)
        self._index = {}  # keyframe indices of the current grasp: "close", "lifted"
        self._grasp_checked = False
        self._hover_q = HOME_POSITION[:5]
        self._arm_q = HOME_POSITION[:5].copy()  # the last IK solution: the next one's start
        self._position, self._yaw = np.zeros(3), 0.0  # the grasp point and the jaws' yaw of the last target

    @property
    def keyframes(self) -> tuple[Keyframe, ...]:
        """The planned path; the first keyframe is reached from the rest pose in joint space."""
        return tuple(self._keyframes)

    @property
    def lift_time_s(self) -> float:
        """When the current grasp has closed the jaws and lifted them back to the hover height: from then on
        `regrasp_if_missed` looks at the block."""
        return self._keyframes[self._index["lifted"]].time_s

    @property
    def duration_s(self) -> float:
        return self._keyframes[-1].time_s if self._keyframes else 0.0

    def plan(self, block_pose: np.ndarray, seed: int) -> ExpertChoice:
        """Draw this episode's variation from `seed` and plan the path to grasp the block at `block_pose`
        (x, y, z, qw, qx, qy, qz) and place it on the chosen pad."""
        self._rng = rng = np.random.default_rng([seed, 14])
        block, block_yaw = _position_yaw(block_pose)
        self.choice = choice = ExpertChoice(
            pad=int(rng.integers(2)), grasp_yaw=grasp_yaw(block, block_yaw),
            approach_side=float(rng.choice([-1.0, 1.0])), pace=float(rng.uniform(0.8, 1.25)))
        side = [block[0], block[1] + choice.approach_side * APPROACH_OFFSET_M, HOVER_HEIGHT_M + 0.02]
        frames = []
        self._add(frames, 0.0, side, choice.grasp_yaw, GRIPPER_OPEN)
        self._pick_and_place(frames, block, choice.grasp_yaw)
        # The first keyframe is reached from the rest pose in joint space, over `reach_s`.
        reach_s = 1.5 * choice.pace * rng.uniform(0.9, 1.1)
        self._keyframes = [Keyframe(f.time_s + reach_s, f.position, f.yaw, f.gripper) for f in frames]
        self._hover_q, _ = self.ik.solve(HOME_POSITION[:5], self._keyframes[0].position,
                                         down_orientation(choice.grasp_yaw), iterations=200)
        self._arm_q = self._hover_q.copy()
        self.attempt, self._grasp_checked = 1, False
        self.first_grasp_time_s = self._keyframes[self._index["close"]].time_s
        return choice

    def _add(self, frames: list[Keyframe], duration_s: float, position, yaw: float, gripper: float) -> int:
        """Append the keyframe reached `duration_s` (times the pace and a jitter) after the last one; its index."""
        start_s = frames[-1].time_s if frames else 0.0
        frames.append(Keyframe(start_s + duration_s * self.choice.pace * self._rng.uniform(0.9, 1.1),
                               np.array(position, dtype=float), yaw, gripper))
        return len(frames) - 1

    def _pick_and_place(self, frames: list[Keyframe], block: np.ndarray, yaw: float) -> None:
        """Extend `frames` with the path from the last of them: over the block, down, a still pause, close the
        jaws, lift, over the chosen pad, down, open, up. The block keeps its yaw in the jaws, so it is released
        with the yaw it was grasped at."""
        pad = np.array([*PAD_CENTERS_M[self.choice.pad], 0.0])

        def add(duration_s, position, gripper, name=None):
            index = self._add(frames, duration_s, position, yaw, gripper)
            if name:
                self._index[name] = index

        hover = [block[0], block[1], HOVER_HEIGHT_M]
        add(0.6, hover, GRIPPER_OPEN)
        add(1.0, [block[0], block[1], GRASP_HEIGHT_M], GRIPPER_OPEN)
        add(0.3, [block[0], block[1], GRASP_HEIGHT_M], GRIPPER_OPEN, "close")
        add(0.5, [block[0], block[1], GRASP_HEIGHT_M], GRIPPER_CLOSED)
        add(0.8, hover, GRIPPER_CLOSED, "lifted")
        add(1.4, [pad[0], pad[1], HOVER_HEIGHT_M], GRIPPER_CLOSED)
        add(0.8, [pad[0], pad[1], RELEASE_HEIGHT_M], GRIPPER_CLOSED)
        add(0.4, [pad[0], pad[1], RELEASE_HEIGHT_M], GRIPPER_OPEN)
        add(0.6, [pad[0], pad[1], HOVER_HEIGHT_M + 0.04], GRIPPER_OPEN)

    def regrasp_if_missed(self, t_s: float, block_pose: np.ndarray) -> bool:
        """Once the jaws have closed and lifted (at `t_s` seconds into the episode), look at the block
        (x, y, z, qw, ...) as an operator would: if it still lies on the table, the grasp missed (the jaws
        closed on nothing, or a finger landed on the block and pushed it), so plan a new one from where the
        gripper is: open the jaws, go over the block where it now lies, and grasp it as the first time. At most
        `grasp_attempts` grasps per episode. True when it planned a new grasp.

        Why: a policy's grasp misses now and then, and one that has only seen grasps that hold does not know
        what to do with empty jaws above the block (it stays there, docs/so101.md). Demos that grasp again
        show it."""
        if self._grasp_checked or t_s < self.lift_time_s:
            return False
        self._grasp_checked = True
        block, block_yaw = _position_yaw(block_pose)
        if block[2] > LIFTED_BLOCK_Z_M or self.attempt >= self.grasp_attempts:
            return False
        frames = [Keyframe(t_s, self._position, self._yaw, GRIPPER_CLOSED)]
        self._add(frames, 0.4, self._position, self._yaw, GRIPPER_OPEN)
        self._pick_and_place(frames, block, grasp_yaw(block, block_yaw))
        self._keyframes = frames
        self.attempt, self._grasp_checked = self.attempt + 1, False
        return True

    def target(self, t_s: float) -> np.ndarray:
        """The six joint targets (radians) at `t_s` seconds into the episode; hold the last after the end."""
        frames = self._keyframes
        if not frames:
            raise RuntimeError("ScriptedExpert.target before plan(); call plan(block_pose, seed) first")
        if t_s <= frames[0].time_s and self.attempt == 1:  # from the rest pose to the first keyframe
            u = smoothstep(t_s / frames[0].time_s)
            arm = (1 - u) * HOME_POSITION[:5] + u * self._hover_q
            gripper = (1 - u) * HOME_POSITION[5] + u * frames[0].gripper
            self._arm_q = arm
            return np.append(arm, gripper)
        k = min(max(int(np.searchsorted([f.time_s for f in frames], t_s)), 1), len(frames) - 1)
        a, b = frames[k - 1], frames[k]
        u = smoothstep((t_s - a.time_s) / max(b.time_s - a.time_s, 1e-9)) if t_s < b.time_s else 1.0
        self._position = (1 - u) * a.position + u * b.position
        self._yaw = (1 - u) * a.yaw + u * b.yaw
        self._arm_q, _ = self.ik.solve(self._arm_q, self._position, down_orientation(self._yaw))
        return np.append(self._arm_q, (1 - u) * a.gripper + u * b.gripper)


def _position_yaw(block_pose: np.ndarray) -> tuple[np.ndarray, float]:
    """(the block's position (3,), its yaw) from its pose (x, y, z, qw, qx, qy, qz)."""
    return np.asarray(block_pose[:3], dtype=float), quaternion_yaw(block_pose[3:7])
