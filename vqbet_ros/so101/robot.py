"""The simulated SO-101 as a robot: position-controlled joints, a block, a task, two cameras. ROS-free.

Time: the physics runs on one exact grid. A control period (`control_hz`, the camera and policy rate) holds
`ticks_per_control` ticks (the joint-state rate), each of `substeps` MuJoCo steps; the MuJoCo timestep is set
to fit (30 Hz x 5 ticks x 4 substeps: 150 Hz joint states, a 1/600 s timestep, finer than the shipped 2 ms).
`tick(target)` advances one tick with the actuators' position targets set to `target`.

Units: joint positions in radians in `JOINT_NAMES` order, the gripper included (its joint angle: about -0.17
closed, 1.75 fully open, 0.46 with the jaws 4 cm apart); positions in metres in the world frame (the arm's
base at the origin, x forward, z up); the block pose as (x, y, z, qw, qx, qy, qz).

Tasks (`SO101Config.task`): `place` is done when the block rests inside either target pad (two valid
placements, `scene.PAD_CENTERS_M`); `lift` when the block's centre is `lift_height_m` above the table.
"""
from __future__ import annotations

import importlib
import importlib.util
import math
from dataclasses import dataclass, field

import mujoco
import numpy as np

from vqbet_ros.so101 import scene
from vqbet_ros.so101.scene import BLOCK_HALF_SIZE_M, CAMERA_NAMES, JOINT_NAMES, PAD_CENTERS_M, PAD_HALF_SIZE_M

TASKS = ("place", "lift")
# The arm's rest pose between episodes: folded up and back, gripper half open, clear of the block's region.
HOME_POSITION = np.array([0.0, -1.57, 1.45, 1.0, 0.0, 0.3])
# Where a reset puts the block: a box between the pads, in front of the arm (x, y in metres; yaw in radians,
# any yaw being one of a cube's four equivalent ones).
BLOCK_X_RANGE_M = (0.19, 0.29)
BLOCK_Y_RANGE_M = (-0.06, 0.06)
# A block whose centre is within this of the table's contact height counts as resting (place task).
RESTING_TOLERANCE_M = 0.005


def quaternion_yaw(wxyz) -> float:
    """Rotation about the vertical axis of the orientation quaternion (w, x, y, z)."""
    w, x, y, z = wxyz
    return math.atan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z))


@dataclass(frozen=True)
class CameraConfig:
    """One camera's image size; rendered without shadows, reflections or skybox (docs/so101.md, timings)."""

    width: int = 128
    height: int = 96

    def __post_init__(self):
        if not (8 <= self.width <= 1280 and 8 <= self.height <= 1024):
            raise ValueError(f"camera size {self.width}x{self.height} px is out of range; expected width in "
                             f"[8, 1280] and height in [8, 1024]")


@dataclass(frozen=True)
class SO101Config:
    """The simulated arm and its task.

    Args:
        control_hz: camera and command rate (Hz); one control period is `ticks_per_control` physics ticks.
        ticks_per_control: joint-state ticks per control period (joint states go out every tick).
        substeps: MuJoCo steps per tick; the timestep is 1 / (control_hz * ticks_per_control * substeps).
        task: `place` (either pad) or `lift`.
        lift_height_m: the `lift` task's height of the block's centre above its resting height.
        episode_s: an episode's length in seconds of sim time.
        cameras: camera name -> size; names from `scene.CAMERA_NAMES`. Empty: no rendering at all.
    """

    control_hz: float = 30.0
    ticks_per_control: int = 5
    substeps: int = 4
    task: str = "place"
    lift_height_m: float = 0.06
    episode_s: float = 20.0
    cameras: dict[str, CameraConfig] = field(default_factory=lambda: {n: CameraConfig() for n in CAMERA_NAMES})

    def __post_init__(self):
        if not (1.0 <= self.control_hz <= 200.0):
            raise ValueError(f"`control_hz` is {self.control_hz}; expected 1 to 200 Hz")
        if self.ticks_per_control < 1 or self.substeps < 1:
            raise ValueError(f"`ticks_per_control` ({self.ticks_per_control}) and `substeps` ({self.substeps}) "
                             "must be >= 1")
        if self.task not in TASKS:
            raise ValueError(f"`task` is {self.task!r}; expected one of {list(TASKS)}")
        if not (0.0 < self.lift_height_m < 0.3):
            raise ValueError(f"`lift_height_m` is {self.lift_height_m}; expected a height in (0, 0.3) m")
        if not self.episode_s > 0:
            raise ValueError(f"`episode_s` is {self.episode_s}; expected seconds > 0")
        unknown = set(self.cameras) - set(CAMERA_NAMES)
        if unknown:
            raise ValueError(f"`cameras` names {sorted(unknown)}; the scene has {list(CAMERA_NAMES)}")

    @property
    def tick_s(self) -> float:
        return 1.0 / (self.control_hz * self.ticks_per_control)

    @property
    def timestep_s(self) -> float:
        return self.tick_s / self.substeps

    @property
    def episode_ticks(self) -> int:
        return int(round(self.episode_s / self.tick_s))


class SO101Robot:
    """Physics of the arm and the block, with the task's success. Cameras are `SO101Cameras` (their own
    thread may render while this one steps)."""

    def __init__(self, config: SO101Config = SO101Config()):
        self.config = config
        self.model = scene.build_spec().compile()
        self.model.opt.timestep = config.timestep_s
        self.data = mujoco.MjData(self.model)
        self._qpos_adr = np.array([self.model.joint(n).qposadr[0] for n in JOINT_NAMES])
        self._qvel_adr = np.array([self.model.joint(n).dofadr[0] for n in JOINT_NAMES])
        self._actuator = np.array([self.model.actuator(n).id for n in JOINT_NAMES])
        self.ctrl_low, self.ctrl_high = self.model.actuator_ctrlrange[self._actuator].T
        self._block_adr = self.model.joint(scene.BLOCK_BODY).qposadr[0]
        self._block_rest_z = None
        self.tick_index = 0
        self.reset(seed=0)

    # --- episode ---
    def reset(self, seed: int) -> None:
        """Arm at `HOME_POSITION`, the block at a pose drawn from `seed`, then 0.2 s of settling."""
        rng = np.random.default_rng(seed)
        mujoco.mj_resetData(self.model, self.data)
        self.data.qpos[self._qpos_adr] = HOME_POSITION
        yaw = rng.uniform(-math.pi / 4, math.pi / 4)
        xy = [rng.uniform(*BLOCK_X_RANGE_M), rng.uniform(*BLOCK_Y_RANGE_M)]
        self.data.qpos[self._block_adr:self._block_adr + 7] = [*xy, BLOCK_HALF_SIZE_M, math.cos(yaw / 2), 0.0,
                                                               0.0, math.sin(yaw / 2)]
        self.data.ctrl[self._actuator] = HOME_POSITION
        mujoco.mj_forward(self.model, self.data)
        for _ in range(int(round(0.2 / self.config.timestep_s))):
            mujoco.mj_step(self.model, self.data)
        self._block_rest_z = float(self.block_pose[2])
        self.data.time = 0.0
        self.tick_index = 0

    @property
    def time_s(self) -> float:
        return self.tick_index * self.config.tick_s

    @property
    def done(self) -> bool:
        return self.tick_index >= self.config.episode_ticks

    # --- control ---
    def tick(self, target: np.ndarray) -> None:
        """One tick towards the joint positions `target` (6,), clipped to the actuators' ranges."""
        target = np.asarray(target, dtype=float).reshape(len(JOINT_NAMES))
        if not np.all(np.isfinite(target)):
            raise ValueError(f"joint target contains NaN or inf: {target.tolist()}")
        self.data.ctrl[self._actuator] = np.clip(target, self.ctrl_low, self.ctrl_high)
        for _ in range(self.config.substeps):
            mujoco.mj_step(self.model, self.data)
        self.tick_index += 1

    # --- sensing ---
    @property
    def joint_positions(self) -> np.ndarray:
        return self.data.qpos[self._qpos_adr].copy()

    @property
    def joint_velocities(self) -> np.ndarray:
        return self.data.qvel[self._qvel_adr].copy()

    @property
    def qpos(self) -> np.ndarray:
        """The full MuJoCo state's positions (what `SO101Cameras.render` needs)."""
        return self.data.qpos.copy()

    @property
    def block_pose(self) -> np.ndarray:
        """(7,) block position (x, y, z) and orientation quaternion (w, x, y, z)."""
        return self.data.qpos[self._block_adr:self._block_adr + 7].copy()

    @property
    def block_yaw(self) -> float:
        return quaternion_yaw(self.block_pose[3:])

    @property
    def lifted(self) -> bool:
        return self.block_pose[2] - self._block_rest_z >= self.config.lift_height_m

    @property
    def placed_pad(self) -> int | None:
        """Index of the pad the block rests inside, or None."""
        x, y, z = self.block_pose[:3]
        if abs(z - self._block_rest_z) > RESTING_TOLERANCE_M:
            return None
        for k, (px, py) in enumerate(PAD_CENTERS_M):
            if abs(x - px) <= PAD_HALF_SIZE_M and abs(y - py) <= PAD_HALF_SIZE_M:
                return k
        return None

    @property
    def success(self) -> bool:
        return self.lifted if self.config.task == "lift" else self.placed_pad is not None


def _load_triton_before_mesa() -> None:
    """Mesa's software OpenGL (llvmpipe) and triton (torch's compiler backend, installed with CUDA builds of
    torch) each bring their own LLVM: a process that loads triton after Mesa has rendered dies in triton's
    initialisation (a segfault; torchvision and torch.compile import triton). So when triton is installed it is
    loaded before the first OpenGL context; sim and policy then share one process safely (`vqbet-demo`, tests)."""
    if importlib.util.find_spec("triton") is not None:
        importlib.import_module("triton")


class SO101Cameras:
    """Renders the cameras of `SO101Config.cameras` from a physics state (`SO101Robot.qpos`).

    Uses the render model (thinned visual meshes, `scene.VISUAL_MESH_CELL_M`) with shadows, reflections and
    the skybox off (docs/so101.md has the measured costs). Create, use and close it on one thread: each
    renderer's OpenGL context belongs to the thread that made it current."""

    def __init__(self, cameras: dict[str, CameraConfig]):
        _load_triton_before_mesa()
        self.model = scene.build_spec(scene.VISUAL_MESH_CELL_M).compile()
        self.model.vis.global_.offwidth = max([c.width for c in cameras.values()] + [64])
        self.model.vis.global_.offheight = max([c.height for c in cameras.values()] + [64])
        self._data = mujoco.MjData(self.model)
        self._renderers = {name: mujoco.Renderer(self.model, c.height, c.width) for name, c in cameras.items()}

    def render(self, qpos: np.ndarray) -> dict[str, np.ndarray]:
        """camera name -> (H, W, 3) uint8 rgb of the state `qpos`."""
        self._data.qpos[:] = qpos
        mujoco.mj_kinematics(self.model, self._data)
        mujoco.mj_camlight(self.model, self._data)
        images = {}
        for name, renderer in self._renderers.items():
            renderer.update_scene(self._data, camera=name)
            for flag in (mujoco.mjtRndFlag.mjRND_SHADOW, mujoco.mjtRndFlag.mjRND_REFLECTION,
                         mujoco.mjtRndFlag.mjRND_SKYBOX):
                renderer.scene.flags[flag] = 0
            images[name] = renderer.render()
        return images

    def close(self) -> None:
        for renderer in self._renderers.values():
            renderer.close()
        self._renderers = {}
