"""A smooth random push on the follower arm while a demo is recorded (DART: Laskey et al., CoRL 2017). ROS-free.

A policy trained only on an expert's perfect paths has never seen the arm a little off its path, so a small
error of its own takes it where it has no data, and it copies the motion it sees instead of steering back
(docs/so101.md). While recording, the teleop can command the follower `target + disturbance` and record the
leader's clean `target` as the action: the demos then hold states off the path, each labelled with the way
back. The disturbance is an Ornstein-Uhlenbeck process per arm joint, so the follower wanders smoothly (no
jumps a real arm could not follow); the gripper is never disturbed (the jaws would drop the block). The teleop
pushes until the expert's first grasp and fades the push out just before the jaws close: a finger pushed 1 cm
off the path lands on the block's edge, and then the expert sees the missed grasp and grasps again
(`ScriptedExpert.regrasp_if_missed`), so the demos also show what to do after a miss.
"""
from __future__ import annotations

import math

import numpy as np

ARM_JOINT_COUNT = 5  # the gripper, the sixth, is left alone
# The teleop fades the disturbance out over this long before the jaws close (the expert's still pause before
# closing is ~0.3 s), so they close where the expert aimed them.
FADE_S = 0.3


def fade_out(t_s: float, end_s: float, fade_s: float) -> float:
    """1 until `fade_s` before `end_s`, then linearly down to 0 at `end_s`, and 0 after."""
    return float(min(max((end_s - t_s) / fade_s, 0.0), 1.0))


class FollowerDisturbance:
    """An Ornstein-Uhlenbeck offset (radians) for the six joint targets, advanced once per control period."""

    def __init__(self, std_rad: float, time_constant_s: float, control_hz: float):
        if std_rad < 0 or time_constant_s <= 0 or control_hz <= 0:
            raise ValueError(f"FollowerDisturbance(std_rad={std_rad}, time_constant_s={time_constant_s}, "
                             f"control_hz={control_hz}): expected std >= 0, time constant > 0, rate > 0")
        self.std_rad = std_rad
        self._decay = math.exp(-1.0 / (time_constant_s * control_hz))
        self._offset = np.zeros(6)
        self._rng = np.random.default_rng(0)

    def reset(self, seed: int) -> None:
        """Start an episode from zero offset with draws from `seed` (the same seed, the same disturbance)."""
        self._rng = np.random.default_rng([seed, 17])
        self._offset = np.zeros(6)

    def step(self, scale: float = 1.0) -> np.ndarray:
        """The next period's offset (6,): stationary standard deviation `std_rad` on each arm joint, times
        `scale` (the process runs on; the scale only sets how much of it reaches the arm)."""
        noise = self._rng.standard_normal(ARM_JOINT_COUNT) * self.std_rad * math.sqrt(1 - self._decay ** 2)
        self._offset[:ARM_JOINT_COUNT] = self._decay * self._offset[:ARM_JOINT_COUNT] + noise
        return scale * self._offset

    def step_before(self, t_s: float, end_s: float) -> np.ndarray:
        """The next period's offset at `t_s` into the episode, faded out over `FADE_S` before `end_s` and off
        after it: what the teleop pushes, with `end_s` the expert's first grasp
        (`ScriptedExpert.first_grasp_time_s`)."""
        return self.step(fade_out(t_s, end_s, FADE_S))
