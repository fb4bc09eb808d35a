"""The runtime's output: one action chunk with absolute timing, free of any message type.

Stamping rule (shared with `nodes/trajectory.py`): `start_stamp_s` is the control tick at which the newest
observation in the history was sampled (node clock: ROS time, sim time under `use_sim_time`); point k is due
at `start_stamp_s + (k + 1) * dt_s`. So the first point lies one control step after the observation, as in
training (the obs at step t targets a_t, reached by the next step), and a controller that drops points
already in the past (joint_trajectory_controller does) compensates the decision latency by itself.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class ActionChunk:
    """K timed joint targets.

    Args:
        joint_names: commanded joints (checkpoint `action_names`), in column order.
        positions: (K, A) float64 targets in action units, after the safety filter.
        start_stamp_s: observation tick time (s, node clock); point k is due at start + (k + 1) * dt.
        dt_s: 1 / fps of the checkpoint.
        step_index: control tick index of the observation (restarts after a reset).
    """

    joint_names: list[str]
    positions: np.ndarray
    start_stamp_s: float
    dt_s: float
    step_index: int = 0

    @property
    def times_from_start_s(self) -> np.ndarray:
        """(K,) time of each point after `start_stamp_s`: (k + 1) * dt."""
        return (np.arange(len(self.positions)) + 1) * self.dt_s

    @property
    def due_times_s(self) -> np.ndarray:
        """(K,) absolute due time of each point."""
        return self.start_stamp_s + self.times_from_start_s
