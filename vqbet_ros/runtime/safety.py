"""Safety filter applied to every plan before it leaves the runtime.

Order: (1) a plan with NaN/Inf is refused (no command at all, never a partial one); (2) the step limit: the
first point may differ from the measured joint position by at most `max_delta` and each later point from the
one before by at most `max_delta` (so point k stays within (k+1)·max_delta of the arm, LeRobot's
`max_relative_target` idea applied along the chunk, docs/ros2.md §7); (3) the joint-limit clamp, last, so that
a command never leaves the limits even when the arm itself is measured outside them.
"""
from __future__ import annotations

import numpy as np


class UnsafeCommand(ValueError):
    """Something that must not be sent: a NaN/Inf plan, or one the step limit cannot bound."""


class SafetyFilter:
    """Clamp (K, A) plans to joint limits and a maximum change per control step.

    Args:
        lower, upper: (A,) joint limits or None.
        max_delta: (A,) or scalar largest change per step, or None.
    """

    def __init__(self, lower=None, upper=None, max_delta=None):
        self.lower = None if lower is None or len(lower) == 0 else np.asarray(lower, dtype=np.float64)
        self.upper = None if upper is None or len(upper) == 0 else np.asarray(upper, dtype=np.float64)
        self.max_delta = (
            None if max_delta is None or np.size(max_delta) == 0 else np.asarray(max_delta, dtype=np.float64)
        )

    @property
    def needs_measured_state(self) -> bool:
        return self.max_delta is not None

    def apply(self, plan: np.ndarray, measured: np.ndarray | None = None) -> np.ndarray:
        """(K, A) plan -> (K, A) filtered copy. `measured` (A,) is the arm's position now."""
        plan = np.array(plan, dtype=np.float64)
        if not np.all(np.isfinite(plan)):
            bad = sorted(set(np.argwhere(~np.isfinite(plan))[:, 1].tolist()))
            raise UnsafeCommand(f"policy output is not finite (NaN/Inf) for joint column(s) {bad}")
        if self.max_delta is not None:
            if measured is None:
                raise ValueError("`max_delta_per_step` needs the measured position of every commanded joint")
            previous = np.asarray(measured, dtype=np.float64)
            if not np.all(np.isfinite(previous)):  # the clip would pass NaN through as the command
                raise UnsafeCommand(f"measured joint position is not finite ({previous.tolist()}); the step "
                                    "limit cannot bound the command")
            for k in range(len(plan)):
                plan[k] = np.clip(plan[k], previous - self.max_delta, previous + self.max_delta)
                previous = plan[k]
        if self.lower is not None:
            plan = np.clip(plan, self.lower, self.upper)
        return plan
