"""PushT as a robot: a 2-joint position-controlled "arm" (the agent's x, y) with a 96x96 camera. ROS-free.

Wraps `gym_pusht`'s `PushTEnv` (pymunk physics, PD control at 10 Hz with 10 substeps of 10 ms) as a robot
with the shape the rest of the package expects: joints, a camera, extra low-dimensional observations and a
clock. The ROS node (`nodes/pusht_sim_node.py`) publishes what `observe()` returns and calls `step()` on its
timer; `vqbet-eval` drives the same env through gymnasium, so both see the same physics and seeds.

Units: positions are PushT pixels of the 512 x 512 workspace (the demos' and gym_pusht's unit), angles radians,
time seconds of sim time (step k starts at k / control_hz).

Observations (`PushTObservation`):
- joints `agent_x`, `agent_y` (`JOINT_NAMES`): the agent's position; the command is the agent's target
  position in the same units, so `action_names == joint_names`.
- camera `top`: the 96x96 rgb8 render gym_pusht gives as `pixels` (the demos' `img`).
- extra low-dim observations (`LOW_DIM_SIZES`), each also published as its own topic by the node:
  `keypoints` (18) the 9 block keypoints of the Diffusion Policy demos (`data/keypoint`, x0, y0, x1, ...),
  `keypoints_gym` (16) gym_pusht's `environment_state` (8 corner keypoints, LeRobot's pusht_keypoints),
  `block_pose` (3) block x, y, angle (angle in [0, 2 pi) as in gym_pusht's `state` obs).

Episode protocols (`PROTOCOLS`; docs/pusht-evaluation.md): how an episode starts and ends.
- `gym`: gym_pusht's `PushT-v0`: initial state from the env's generator, the episode ends when the block
  covers the goal or after 300 steps.
- `official`: the public VQ-BeT evaluation (`examples/pusht_env.py` of jayLEE0301/vq_bet_official), the one
  the paper's PushT table is made with: initial state from `np.random.RandomState(seed)` with the block's
  angle set before its position (`legacy=False`), so its origin is uniform in [100, 400)^2 whatever the angle;
  no early end: every episode runs 302 steps and is scored by the coverage after the last one.
"""
from __future__ import annotations

import logging
import os
import warnings
from dataclasses import dataclass
from typing import Literal

import numpy as np

from vqbet_ros.pusht.episode import is_success

# gym_pusht renders with pygame Surfaces only, but pygame may probe a display on import: keep it headless.
os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    from gym_pusht.envs.pusht import PushTEnv  # noqa: E402

log = logging.getLogger(__name__)

JOINT_NAMES = ("agent_x", "agent_y")
CAMERA_NAME = "top"
IMAGE_SIZE = 96  # the demos' and gym_pusht's observation size
CONTROL_HZ = 10.0  # gym_pusht's fixed control rate (metadata render_fps); the demos were recorded at it
WORKSPACE_PX = 512.0
LOW_DIM_SIZES = {"keypoints": 18, "keypoints_gym": 16, "block_pose": 3}

# The 9 block keypoints of the Diffusion Policy demos in the block's body frame (pixels). Upstream samples them
# once by farthest-point sampling on a rendering (diffusion_policy/env/pusht/pymunk_keypoint_manager.py); these
# values were fitted from `pusht_cchi_v7_replay.zarr` (`data/keypoint` vs `data/state`; median error < 0.001 px,
# test/test_pusht_robot.py checks them against the zarr).
DP_BLOCK_KEYPOINTS = np.array([
    [9.270, 90.041], [-60.983, -1.187], [60.913, -1.393], [-0.271, 25.544], [-14.065, 122.816],
    [39.003, 32.857], [-39.966, 32.730], [-16.824, 62.863], [23.541, -1.700],
])


@dataclass(frozen=True)
class EpisodeProtocol:
    """How an episode starts and ends (see the module docstring)."""

    name: str
    max_steps: int  # control steps of an episode that does not end early
    end_on_success: bool  # the episode ends as soon as the block covers the goal
    official_reset: bool  # initial state drawn as the public VQ-BeT env draws it


PROTOCOLS = {
    "gym": EpisodeProtocol("gym", max_steps=300, end_on_success=True, official_reset=False),
    # The public env ends its episode when its step counter passes 300, after the 302nd step.
    "official": EpisodeProtocol("official", max_steps=302, end_on_success=False, official_reset=True),
}
ProtocolName = Literal["gym", "official"]


def episode_protocol(name: str) -> EpisodeProtocol:
    if name not in PROTOCOLS:
        raise ValueError(f"unknown PushT protocol {name!r}; expected one of {sorted(PROTOCOLS)}")
    return PROTOCOLS[name]


def official_initial_state(seed: int) -> np.ndarray:
    """[agent x, y, block x, y, angle] of the public VQ-BeT env's reset for `seed`: the legacy NumPy
    generator's draws in that env's order (agent in [50, 450), block origin in [100, 400), angle from a normal
    distribution scaled by 2 pi and shifted by -pi)."""
    rs = np.random.RandomState(seed=seed)
    return np.array([rs.randint(50, 450), rs.randint(50, 450), rs.randint(100, 400), rs.randint(100, 400),
                     rs.randn() * 2 * np.pi - np.pi], dtype=float)


def block_keypoints(block_pose: np.ndarray) -> np.ndarray:
    """(9, 2) Diffusion Policy keypoints of a block at pose (x, y, angle)."""
    x, y, angle = block_pose
    c, s = np.cos(angle), np.sin(angle)
    rotation = np.array([[c, -s], [s, c]])
    return DP_BLOCK_KEYPOINTS @ rotation.T + np.array([x, y])


@dataclass
class PushTObservation:
    """Everything the robot shows at one instant (after `step` or `reset`)."""

    time_s: float  # sim time
    step: int  # control steps since reset
    image: np.ndarray | None  # (H, W, 3) uint8 rgb; None when the robot does not render its camera
    agent_xy: np.ndarray  # (2,) joint positions, order JOINT_NAMES
    block_pose: np.ndarray  # (3,) x, y, angle in [0, 2 pi)
    keypoints: np.ndarray  # (18,) Diffusion Policy block keypoints
    keypoints_gym: np.ndarray  # (16,) gym_pusht environment_state
    coverage: float  # fraction of the goal covered by the block
    success: bool  # `episode.is_success`: coverage above 0.95

    def low_dim(self, name: str) -> np.ndarray:
        if name not in LOW_DIM_SIZES:
            raise KeyError(f"unknown PushT low-dim observation `{name}`; known: {sorted(LOW_DIM_SIZES)}")
        return getattr(self, name)


class PushTRobot:
    """gym_pusht's PushT as a position-controlled robot with a camera and a sim clock.

    `reset(seed=...)` draws the initial state of `protocol` for that seed (`gym`: the same as
    `gym.make("gym_pusht/PushT-v0").reset(seed=...)`; `official`: the public VQ-BeT env's);
    `reset(state=...)` starts from a demo's state [agent x, y, block x, y, angle]. `step(target)` runs one
    control step (100 ms of sim time) towards the absolute target position. `render_camera=False` skips the
    96x96 camera image (most of a step's CPU time) for users that never read it.
    """

    def __init__(self, image_size: int = IMAGE_SIZE, video_size: int = 384, protocol: ProtocolName = "gym",
                 max_episode_steps: int | None = None, render_camera: bool = True):
        if image_size < 8 or video_size < 8:
            raise ValueError(f"`image_size` and `video_size` must be >= 8 px, got {image_size} and {video_size}")
        self.protocol = episode_protocol(protocol)
        self.max_episode_steps = self.protocol.max_steps if max_episode_steps is None else max_episode_steps
        if self.max_episode_steps < 1:
            raise ValueError(f"`max_episode_steps` must be >= 1, got {max_episode_steps}")
        self.image_size = image_size
        self.render_camera = render_camera
        self._env = PushTEnv(obs_type="state", render_mode="rgb_array", observation_width=image_size,
                             observation_height=image_size, visualization_width=video_size,
                             visualization_height=video_size)
        self.control_hz = float(self._env.control_hz)
        self.dt_s = 1.0 / self.control_hz
        self.step_index = 0
        self._coverage = 0.0
        self._last_target: np.ndarray | None = None
        self._env.reset(seed=0)  # builds the bodies (`_legacy_reset_state` reads the block's cog)
        self.reset(seed=0)

    # --- episode ---
    def reset(self, seed: int | None = None, state: np.ndarray | None = None) -> PushTObservation:
        """Start an episode: random initial state from `seed`, or the given [ax, ay, bx, by, angle]."""
        options = None
        if state is None and self.protocol.official_reset:
            state = official_initial_state(0 if seed is None else seed)
        if state is not None:
            state = np.asarray(state, dtype=float).reshape(-1)
            if state.shape != (5,) or not np.all(np.isfinite(state)):
                raise ValueError(f"`state`: expected 5 finite values [agent x, y, block x, y, angle], got {state}")
            options = {"reset_to_state": self._legacy_reset_state(state)}
        self._env.reset(seed=seed, options=options)
        self.step_index = 0
        self._last_target = None
        self._coverage = float(self._env._get_coverage())
        return self.observe()

    def _legacy_reset_state(self, state: np.ndarray) -> np.ndarray:
        """The state to pass to gym_pusht so that the block ends up exactly at `state`'s pose.

        gym_pusht keeps Diffusion Policy's legacy order (position, then angle), and pymunk rotates a body about
        its centre of gravity, so the block's origin moves by (I - R(angle)) cog. Replaying a demo from its
        recorded state needs the pose it recorded, so that shift is subtracted first.
        """
        cog = np.array(self._env.block.center_of_gravity)  # body frame; the block is rebuilt at angle 0
        c, s = np.cos(state[4]), np.sin(state[4])
        shift = cog - np.array([[c, -s], [s, c]]) @ cog
        return np.concatenate([state[:2], state[2:4] - shift, state[4:]])

    @property
    def time_s(self) -> float:
        return self.step_index * self.dt_s

    @property
    def coverage(self) -> float:
        return self._coverage

    @property
    def success(self) -> bool:
        return bool(is_success(self._coverage))

    @property
    def done(self) -> bool:
        """The episode is over: the time limit is reached, or the block is on the goal and the protocol ends
        episodes on success."""
        return (self.protocol.end_on_success and self.success) or self.step_index >= self.max_episode_steps

    @property
    def agent_xy(self) -> np.ndarray:
        return np.array(self._env.agent.position, dtype=float)

    # --- control ---
    def step(self, target: np.ndarray | None) -> PushTObservation:
        """One control step towards absolute `target` (2,) in pixels; None holds the agent where it is."""
        if target is None:
            target = self.agent_xy if self._last_target is None else self._last_target
        target = np.clip(np.asarray(target, dtype=float).reshape(2), 0.0, WORKSPACE_PX)
        self._last_target = target
        _, _, _, _, info = self._env.step(target)
        self._coverage = float(info["coverage"])
        self.step_index += 1
        return self.observe()

    # --- sensing ---
    def observe(self) -> PushTObservation:
        env = self._env
        block_pose = np.array([env.block.position[0], env.block.position[1], env.block.angle % (2 * np.pi)])
        return PushTObservation(
            time_s=self.time_s,
            step=self.step_index,
            image=env._render(visualize=False) if self.render_camera else None,
            agent_xy=self.agent_xy,
            block_pose=block_pose,
            keypoints=block_keypoints(block_pose).reshape(-1),
            keypoints_gym=env.get_keypoints(env._block_shapes).reshape(-1).astype(float),
            coverage=self._coverage,
            success=self.success,
        )

    def render_frame(self) -> np.ndarray:
        """A larger rgb frame for videos (video_size square), with the current target marked."""
        return self._env.render()

    def close(self) -> None:
        self._env.close()
