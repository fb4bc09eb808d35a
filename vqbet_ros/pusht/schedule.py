"""Which target the simulated robot follows at each control step: time-stamped chunks and direct targets.

ROS-free. The node converts a `JointTrajectory` into absolute waypoint times (header stamp + time_from_start,
zero stamp = "now") and a (N, A) array and hands them here; a `Float64MultiArray` becomes a direct target.

Semantics (those of a joint trajectory controller, simplified):
- The target for the control step that starts at `t` and ends at `t + dt` is the commanded position *at the
  end of the step*, `t + dt`: the robot is told where to be when the step ends. A policy that stamps its chunk
  with the observation time and `time_from_start = (k+1)/fps` (docs/design.md "ROS interface") therefore has point k
  executed in the k-th step after that observation, exactly as in training (action[t] follows obs[t]).
- Between waypoints the position is interpolated linearly (positions-only JTC waypoints are C0, docs/ros2.md §1).
  Before the first waypoint the first waypoint is the target; after the last one the last is held.
- A new chunk is spliced in at its first waypoint: earlier waypoints of the old chunk are kept, later ones are
  replaced (JTC "trajectory replacement"). A chunk whose waypoints all lie in the past is refused.
- A direct target replaces any chunk and is held until the next command.
"""
from __future__ import annotations

import logging

import numpy as np

log = logging.getLogger(__name__)

# Two stamps closer than this are the same instant: float error of stamp arithmetic, and the 1 us lead of the
# fast-mode /clock over the observation stamps (nodes/pusht_sim_node.py).
_TIME_EPS_S = 1e-5


class TargetSchedule:
    """Time-stamped waypoints (absolute seconds on the sim clock) for an A-dimensional position target."""

    def __init__(self, action_dim: int):
        self.action_dim = action_dim
        self._times_s = np.zeros(0)
        self._positions = np.zeros((0, action_dim))
        self._held: np.ndarray | None = None  # the last target given, held when nothing is scheduled

    def clear(self, hold: np.ndarray | None = None) -> None:
        """Forget every waypoint (episode reset); `hold` becomes the target until a command arrives."""
        self._times_s = np.zeros(0)
        self._positions = np.zeros((0, self.action_dim))
        self._held = None if hold is None else np.asarray(hold, dtype=float).copy()

    def set_target(self, position: np.ndarray) -> None:
        """A direct target (forward-command style): replaces any chunk, held until the next command."""
        position = self._check(np.asarray(position, dtype=float).reshape(1, -1), "target")[0]
        self._times_s = np.zeros(0)
        self._positions = np.zeros((0, self.action_dim))
        self._held = position

    def set_chunk(self, times_s: np.ndarray, positions: np.ndarray, now_s: float) -> bool:
        """Splice a chunk of waypoints (absolute times, strictly increasing) in; False if it is all in the past."""
        times_s = np.asarray(times_s, dtype=float).reshape(-1)
        positions = self._check(np.asarray(positions, dtype=float), "chunk")
        if len(times_s) != len(positions) or len(times_s) == 0:
            raise ValueError(f"a chunk needs one time per waypoint, got {len(times_s)} times "
                             f"and {len(positions)} waypoints")
        if np.any(np.diff(times_s) <= 0):
            raise ValueError(f"chunk waypoint times must increase strictly, got {times_s.tolist()}")
        if times_s[-1] < now_s - _TIME_EPS_S:
            return False
        keep = self._times_s < times_s[0] - _TIME_EPS_S
        self._times_s = np.concatenate([self._times_s[keep], times_s])
        self._positions = np.concatenate([self._positions[keep], positions])
        return True

    def target_for_step(self, t_s: float, dt_s: float) -> np.ndarray | None:
        """Target for the step [t, t + dt): the commanded position at t + dt; None if nothing was ever commanded."""
        end_s = t_s + dt_s
        # Waypoints that lie before this step's start are history; keep the last one for interpolation.
        past = np.searchsorted(self._times_s, t_s - _TIME_EPS_S) - 1
        if past > 0:
            self._times_s = self._times_s[past:]
            self._positions = self._positions[past:]
        if len(self._times_s) == 0:
            return None if self._held is None else self._held.copy()
        nearest = int(np.argmin(np.abs(self._times_s - end_s)))
        if abs(self._times_s[nearest] - end_s) <= _TIME_EPS_S:
            target = self._positions[nearest]  # a waypoint due at the end of this step: exactly it
        elif end_s <= self._times_s[0]:
            target = self._positions[0]
        elif end_s >= self._times_s[-1]:
            target = self._positions[-1]
        else:
            target = np.array([np.interp(end_s, self._times_s, self._positions[:, a])
                               for a in range(self.action_dim)])
        self._held = np.array(target, dtype=float)
        return self._held.copy()

    def covers(self, t_s: float, dt_s: float) -> bool:
        """True when a waypoint at or after t + dt exists, i.e. the step [t, t + dt) was commanded explicitly."""
        return len(self._times_s) > 0 and self._times_s[-1] >= t_s + dt_s - _TIME_EPS_S

    def _check(self, positions: np.ndarray, what: str) -> np.ndarray:
        if positions.ndim != 2 or positions.shape[1] != self.action_dim:
            raise ValueError(f"{what}: expected {self.action_dim} values per waypoint, got shape {positions.shape}")
        if not np.all(np.isfinite(positions)):
            raise ValueError(f"{what}: contains NaN or inf: {positions.tolist()}")
        return positions
