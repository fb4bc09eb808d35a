"""Chunk execution: which predicted actions run at which control step (docs/vqbet.md §5).

The runtime schedules one robot's chunks with these; `vqbet-eval` gives each of its robots its own, so
deployment and evaluation execute chunks by the same rule. Pure NumPy: it lives below both.

Both schedulers index time by the control step (tick) at which a chunk was predicted; a chunk predicted at
step s holds the actions for steps s, s+1, ..., s+W-1. `plan(step)` gives the targets for steps
step, step+1, ... as far as the stored chunks reach: row 0 is what runs now (the per-step command of a
forward controller), the whole plan is what goes into one JointTrajectory.

- `OpenLoopScheduler` (LeRobot): decide only when the previous chunk is used up; execute it open-loop.
- `TemporalEnsembler` (official): decide every step, keep the last W chunks and execute the uniform average
  of their entries for the current step (equal weights, not ACT's exponential ones). Steps further ahead
  are averaged over the chunks that reach them, so the published trajectory is the ensemble's best plan.
"""
from __future__ import annotations

from collections import deque

import numpy as np


class OpenLoopScheduler:
    """LeRobot's action queue: a new decision when the current chunk has no entry left for this step."""

    def __init__(self, chunk_size: int):
        self.chunk_size = chunk_size
        self._start: int | None = None
        self._chunk: np.ndarray | None = None  # (W, A)

    def reset(self) -> None:
        self._start, self._chunk = None, None

    def wants_decision(self, step: int) -> bool:
        return self._chunk is None or not 0 <= step - self._start < len(self._chunk)

    def add(self, step: int, chunk: np.ndarray) -> None:
        self._start, self._chunk = step, np.asarray(chunk, dtype=np.float64)

    def plan(self, step: int) -> np.ndarray | None:
        """(K, A) remaining targets from `step`, or None when nothing is queued for it."""
        if self.wants_decision(step):
            return None
        return self._chunk[step - self._start:]


class TemporalEnsembler:
    """Official VQ-BeT execution: uniform average over the (up to W) chunks that cover a step."""

    def __init__(self, chunk_size: int):
        self.chunk_size = chunk_size
        self._chunks: deque[tuple[int, np.ndarray]] = deque(maxlen=chunk_size)

    def reset(self) -> None:
        self._chunks.clear()

    def wants_decision(self, step: int) -> bool:
        return True

    def add(self, step: int, chunk: np.ndarray) -> None:
        self._chunks.append((step, np.asarray(chunk, dtype=np.float64)))

    def plan(self, step: int) -> np.ndarray | None:
        """(K, A): row k = mean over stored chunks of their entry for step + k; None if no chunk covers step."""
        live = [(s, c) for s, c in self._chunks if 0 <= step - s < len(c)]
        if not live:
            return None
        horizon = max(s + len(c) for s, c in live) - step
        total = np.zeros((horizon, live[0][1].shape[1]))
        count = np.zeros((horizon, 1))
        # Newest chunk first: the order in which `vqbet-eval` has always summed, so its figures stay bit-identical.
        for s, c in reversed(live):
            part = c[step - s:]  # entries for step, step+1, ...
            total[:len(part)] += part
            count[:len(part)] += 1
        return total / count


EXECUTIONS = ("ensemble", "open_loop")  # the chunk execution modes, by the names every CLI and config uses


def make_scheduler(execution: str, chunk_size: int) -> OpenLoopScheduler | TemporalEnsembler:
    if execution == "open_loop":
        return OpenLoopScheduler(chunk_size)
    if execution == "ensemble":
        return TemporalEnsembler(chunk_size)
    raise ValueError(f"`execution`: got {execution!r}, expected one of {list(EXECUTIONS)}")
