"""How smooth executed joint motion is, and how much of its roughness sits at chunk seams. ROS-free: traces in,
figures out; time is an argument.

A chunked policy hands the controller a new trajectory every chunk (open loop) or every control step
(temporal ensembling). A joint_trajectory_controller keeps the position continuous at such a switch (the new
trajectory starts where the old one commands, docs/so101.md) but not the velocity: the new plan heads
elsewhere. From one trace per episode, sampled at the joint-state rate, this measures
- the command: the change of commanded velocity at every control-period boundary, split into *seams* (a new
  chunk takes over there) and boundaries inside a chunk (the knots between its own points);
- the motion achieved: joint speed, and jerk (the second difference of the measured velocities), overall and
  in the first `window_s` after each seam versus elsewhere.
Vectors over joints are reduced to their Euclidean norm (rad/s, rad/s^3 for revolute joints).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class MotionTrace:
    """One episode at the joint-state rate: sample times (evenly spaced, seconds), commanded positions and
    measured velocities at those times, and the instants a new chunk took over (`seams_s`)."""

    times_s: np.ndarray  # (N,)
    commanded: np.ndarray  # (N, J)
    velocities: np.ndarray  # (N, J)
    seams_s: np.ndarray  # (M,)

    def __post_init__(self):
        self.times_s = np.asarray(self.times_s, dtype=float).reshape(-1)
        self.commanded = np.asarray(self.commanded, dtype=float)
        self.velocities = np.asarray(self.velocities, dtype=float)
        self.seams_s = np.asarray(self.seams_s, dtype=float).reshape(-1)
        n = len(self.times_s)
        if self.commanded.shape[:1] != (n,) or self.velocities.shape != self.commanded.shape \
                or self.commanded.ndim != 2:
            raise ValueError(f"a trace needs (N, J) commanded positions and velocities for its N={n} times; got "
                             f"{self.commanded.shape} and {self.velocities.shape}")
        if n > 2 and np.ptp(np.diff(self.times_s)) > 1e-3 * np.mean(np.diff(self.times_s)):
            raise ValueError("trace times must be evenly spaced (one joint state per physics tick)")


def _spread(values: list[float]) -> dict:
    """mean, p95, max and count of a sample (count only when it is empty)."""
    if not values:
        return {"n": 0}
    v = np.asarray(values, dtype=float)
    return {"n": int(v.size), "mean": float(v.mean()), "p95": float(np.percentile(v, 95)), "max": float(v.max())}


def _rms(values: list[float]) -> float | None:
    return float(np.sqrt(np.mean(np.square(values)))) if len(values) else None


def _distance_to_nearest(points: np.ndarray, x: np.ndarray) -> np.ndarray:
    """For each x, the distance to the nearest of `points` (inf when there are none)."""
    points = np.sort(points)
    if points.size == 0:
        return np.full(len(x), np.inf)
    k = np.searchsorted(points, x)
    left = np.abs(x - points[np.clip(k - 1, 0, len(points) - 1)])
    right = np.abs(points[np.clip(k, 0, len(points) - 1)] - x)
    return np.minimum(left, right)


def _time_since_latest(points: np.ndarray, x: np.ndarray) -> np.ndarray:
    """For each x, x minus the latest of `points` at or before it (inf when there is none)."""
    points = np.sort(points)
    k = np.searchsorted(points, x, side="right") - 1
    since = x - points[np.clip(k, 0, max(len(points) - 1, 0))] if points.size else np.full(len(x), np.inf)
    return np.where(k >= 0, since, np.inf)


def seam_smoothness(traces: list[MotionTrace], period_s: float, window_s: float | None = None) -> dict:
    """Pooled smoothness figures over `traces` for a controller whose commands change at the control grid of
    `period_s` (the grid's phase is a trace's first seam, else its first time). `window_s` (default half a
    period): how long after a seam its effect on the measured jerk is counted as "after seams".

    Returns a dict: `command_velocity_jump_at_seams` and `command_velocity_jump_within_chunks` (rad/s; mean, p95,
    max, n over boundaries), `velocity_rms` (rad/s), `jerk_rms`, `jerk_p99`, `jerk_rms_after_seams`,
    `jerk_rms_elsewhere` (rad/s^3; None without samples), `seams` (inside the traces, where a velocity before
    and after is known), `samples`."""
    window_s = period_s / 2 if window_s is None else window_s
    at_seams, within, speed, jerk, jerk_after, jerk_else = [], [], [], [], [], []
    seams = 0
    for trace in traces:
        t, n = trace.times_s, len(trace.times_s)
        if n < 3:
            continue
        dt = float(np.mean(np.diff(t)))
        half = dt / 2
        seams += int(np.sum((trace.seams_s > t[0] + half) & (trace.seams_s < t[-1] - half)))  # with a jump
        # Command: velocity of each interval [t_i, t_i+1], its change at each interior sample.
        command_velocity = np.diff(trace.commanded, axis=0) / dt  # (N-1, J)
        jumps = np.linalg.norm(np.diff(command_velocity, axis=0), axis=1)  # at t_1 .. t_N-2
        grid_s = trace.seams_s.min() if trace.seams_s.size else t[0]  # seams lie on the control grid
        phase = (t[1:-1] - grid_s) / period_s
        on_grid = np.abs(phase - np.round(phase)) * period_s < half
        near_seam = _distance_to_nearest(trace.seams_s, t[1:-1]) < half
        at_seams += jumps[on_grid & near_seam].tolist()
        within += jumps[on_grid & ~near_seam].tolist()
        # Achieved: speed at every sample, jerk centred on t_1 .. t_N-2.
        speed += np.linalg.norm(trace.velocities, axis=1).tolist()
        j = np.linalg.norm(np.diff(trace.velocities, n=2, axis=0), axis=1) / dt**2
        after = _time_since_latest(trace.seams_s, t[1:-1] + half) < window_s + half
        jerk += j.tolist()
        jerk_after += j[after].tolist()
        jerk_else += j[~after].tolist()
    return {
        "seams": seams,
        "samples": len(speed),
        "command_velocity_jump_at_seams": _spread(at_seams),
        "command_velocity_jump_within_chunks": _spread(within),
        "velocity_rms": _rms(speed),
        "jerk_rms": _rms(jerk),
        "jerk_p99": float(np.percentile(jerk, 99)) if jerk else None,
        "jerk_rms_after_seams": _rms(jerk_after),
        "jerk_rms_elsewhere": _rms(jerk_else),
    }
