"""Joint-trajectory execution as a `joint_trajectory_controller` does it, with time as an argument. ROS-free.

The node converts a `JointTrajectory` into a start time (header stamp; None for a zero stamp, meaning "now"),
the points' `time_from_start` and an (N, J) array of positions, and samples the executor at every physics
tick. The rules (docs/so101.md "Trajectory semantics"; ROS 1 JTC's "trajectory replacement", which ROS 2's
controller keeps in spirit: start from where the arm is commanded to be, never jump):
- A trajectory starts at its stamp; a zero stamp means "at the time it arrives".
- A new trajectory replaces the running one from its start time (or from now, if that is already past): until
  then the old one keeps running; at that instant the command continues from the old one's position.
- Points whose time is already past when the trajectory arrives are dropped; the command moves from the
  position at the switch to the first point still ahead.
- Between points the position is interpolated linearly (positions-only points: the controller's linear
  spline); after the last point the last position is held.
- A trajectory that ends before now is refused (JTC: "ends in the past"); an empty one means "stop here"
  (hold the position commanded now).
- A forward command (`Float64MultiArray`, forward_command_controller) replaces any trajectory and is held.

`velocity(t)` is the command's derivative, for reporting commanded motion.
"""
from __future__ import annotations

import numpy as np

# Two times closer than this are one instant (float error of stamp arithmetic).
TIME_EPS_S = 1e-6


class TrajectoryExecutor:
    """Piecewise-linear joint command over absolute time (seconds on the robot's clock)."""

    def __init__(self, hold: np.ndarray):
        hold = self._positions(np.asarray(hold, dtype=float).reshape(1, -1), "hold")[0]
        self.num_joints = len(hold)
        self._times_s = np.zeros(1)
        self._points = hold[None].copy()  # (K, J); one knot = hold it at any time

    def hold(self, position: np.ndarray) -> None:
        """Forget every trajectory and hold `position` (a reset, or a forward command)."""
        position = self._positions(np.asarray(position, dtype=float).reshape(1, -1), "command")[0]
        self._times_s = np.zeros(1)
        self._points = position[None].copy()

    def stop(self, now_s: float) -> None:
        """An empty trajectory: hold the position commanded at `now_s`."""
        self.hold(self.sample(now_s))

    def set_trajectory(self, start_s: float | None, times_from_start_s: np.ndarray, positions: np.ndarray,
                       now_s: float) -> None:
        """Replace the running trajectory from `start_s` (None: `now_s`) with these points.

        Raises ValueError, naming the reason, for a malformed trajectory or one that ends before `now_s`."""
        offsets = np.asarray(times_from_start_s, dtype=float).reshape(-1)
        positions = self._positions(np.asarray(positions, dtype=float), "trajectory")
        if len(offsets) == 0 or len(offsets) != len(positions):
            raise ValueError(f"a trajectory needs one time_from_start per point, got {len(offsets)} times and "
                             f"{len(positions)} points")
        if not np.all(np.isfinite(offsets)) or offsets[0] < 0 or np.any(np.diff(offsets) <= 0):
            raise ValueError(f"time_from_start must be >= 0 and strictly increasing, got {offsets.tolist()}")
        start_s = now_s if start_s is None else float(start_s)
        times_s = start_s + offsets
        if times_s[-1] < now_s - TIME_EPS_S:
            raise ValueError(f"the trajectory ends at {times_s[-1]:.3f} s, before now ({now_s:.3f} s); refused "
                             "(stamp it with the time of the observation it was computed from)")
        switch_s = max(start_s, now_s)
        at_switch = self.sample(switch_s)
        ahead = times_s > switch_s + TIME_EPS_S
        keep = self._times_s < switch_s - TIME_EPS_S  # the old trajectory up to the switch ...
        keep[: max(int(np.searchsorted(self._times_s, now_s)) - 1, 0)] = False  # ... without its past knots
        self._times_s = np.concatenate([self._times_s[keep], [switch_s], times_s[ahead]])
        self._points = np.concatenate([self._points[keep], at_switch[None], positions[ahead]])
        if not ahead.any():  # every point is at the switch or before it (a one-point "go now" trajectory)
            self._points[-1] = positions[-1]

    def sample(self, t_s: float) -> np.ndarray:
        """The commanded joint positions at `t_s`."""
        times, points = self._times_s, self._points
        if t_s <= times[0]:
            return points[0].copy()
        if t_s >= times[-1]:
            return points[-1].copy()
        k = int(np.searchsorted(times, t_s))  # times[k - 1] < t_s <= times[k]
        u = (t_s - times[k - 1]) / (times[k] - times[k - 1])
        return (1 - u) * points[k - 1] + u * points[k]

    def velocity(self, t_s: float) -> np.ndarray:
        """The commanded joint velocities at `t_s` (the slope of the segment holding it; 0 outside)."""
        times, points = self._times_s, self._points
        if t_s < times[0] or t_s >= times[-1]:
            return np.zeros(self.num_joints)
        k = int(np.searchsorted(times, t_s, side="right"))
        return (points[k] - points[k - 1]) / (times[k] - times[k - 1])

    @property
    def end_s(self) -> float:
        """When the last point is reached (the command holds from then on)."""
        return float(self._times_s[-1])

    def _positions(self, positions: np.ndarray, what: str) -> np.ndarray:
        expected = getattr(self, "num_joints", positions.shape[-1] if positions.ndim == 2 else -1)
        if positions.ndim != 2 or positions.shape[1] != expected:
            raise ValueError(f"{what}: expected {expected} positions per point, got shape {positions.shape}")
        if not np.all(np.isfinite(positions)):
            raise ValueError(f"{what}: contains NaN or inf: {positions.tolist()}")
        return positions
