"""The control loop's thread: `PolicyRuntime.step` at absolute deadlines t0 + k/fps, with timing statistics.

Time comes from a clock adapter (`runtime/clock.py` without ROS, the node's ROS-clock adapter with it), so the
same loop runs on wall time and on `/clock` (use_sim_time).
"""
from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from typing import Callable

import numpy as np
import torch

from vqbet_ros.runtime.engine import PolicyRuntime, StepResult

log = logging.getLogger(__name__)

CLOCK_JUMP_PERIODS = 10  # a tick this many periods late (or one period early) means the clock jumped


class RollingStats:
    """The last `size` samples; percentiles on demand."""

    def __init__(self, size: int = 1000):
        self.values: deque[float] = deque(maxlen=size)

    def add(self, value: float) -> None:
        self.values.append(value)

    def percentile(self, q: float) -> float | None:
        values = list(self.values)  # one C-level copy: safe against a concurrent append
        return float(np.percentile(values, q)) if values else None


class PolicyWorker:
    """Runs `runtime.step` on its own thread at absolute deadlines t0 + k/fps on `clock`.

    `publish(result)` is called on the worker thread after every tick (the node publishes there).
    A tick that starts late is still run; ticks whose deadline passed entirely are skipped and counted.
    A tick's result is confirmed at its end (`PolicyRuntime.confirm`), so an input refused while the tick ran
    stops that tick's output too.
    A tick that raises ends as a result with status `error` naming the exception (so the node holds and
    reports it) and the loop goes on: one bad tick never ends the control loop.
    Decision latency = wall time from the start of a deciding tick (the newest frames are taken from the
    cache) to the return of `publish`.
    """

    def __init__(self, runtime: PolicyRuntime, clock, publish: Callable[[StepResult], None]):
        self.runtime, self.clock, self.publish = runtime, clock, publish
        self.period_s = runtime.dt_s
        self.latency_s = RollingStats()
        self.jitter_s = RollingStats()  # tick start minus its deadline
        self.tick_times_s = RollingStats(200)
        self.ticks = 0
        self.ticks_missed = 0
        self.clock_jumps = 0
        self.tick_errors = 0
        self.last_result: StepResult | None = None
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="vqbet-policy-worker", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def achieved_rate_hz(self) -> float | None:
        times = list(self.tick_times_s.values)
        if len(times) < 2 or times[-1] <= times[0]:
            return None
        return (len(times) - 1) / (times[-1] - times[0])

    def _run(self) -> None:
        try:
            with torch.inference_mode():
                self._loop()
        except BaseException as err:  # surfaced by the node's diagnostics; never dies silently
            self.error = err
            log.exception("policy worker stopped")

    def _wait_for(self, deadline_s: float) -> bool:
        """Sleep until the deadline; False when stopped. Before a sleep the clock reads at least one period
        before the deadline (the previous tick ran), so a reading further back means it stepped back between
        ticks: return at once and let the loop re-anchor, instead of sleeping the length of the step."""
        if self.clock.now_s() < deadline_s - 2 * self.period_s:
            return not self._stop.is_set()
        return self.clock.sleep_until(deadline_s, self._stop)

    def _step(self, now_s: float, k: int) -> StepResult:
        try:
            return self.runtime.confirm(self.runtime.step(now_s, tick=k))
        except Exception as err:  # noqa: BLE001 - reported by name below; the loop must go on
            self.tick_errors += 1
            if self.last_result is None or self.last_result.status != "error":  # once per run of errors
                log.exception("control tick %d raised; holding, next tick starts a fresh history", k)
            self.runtime.request_reset()
            # The current generation: the result carries no command, and the node must see it to hold.
            return StepResult(k, now_s, "error", {"policy": f"control tick raised {type(err).__name__}: {err}"},
                              generation=self.runtime.generation)

    def _loop(self) -> None:
        t0 = self.clock.now_s()
        k = 0
        while self._wait_for(t0 + k * self.period_s):
            now_s = self.clock.now_s()
            late_s = now_s - (t0 + k * self.period_s)
            if late_s < -self.period_s or late_s > CLOCK_JUMP_PERIODS * self.period_s:
                # The clock jumped (first /clock message, sim reset, bag loop) or the loop stalled for long:
                # restart the grid here and the history with it (its spacing would be wrong).
                log.warning("clock jumped by %.3f s: control grid and history restart", late_s)
                self.clock_jumps += 1
                if late_s < 0:
                    self.runtime.clock_stepped_back(now_s, -late_s)  # cached inputs are on the old timeline
                else:
                    self.runtime.request_reset()
                t0, k, late_s = now_s, 0, 0.0
            self.jitter_s.add(late_s)
            self.tick_times_s.add(now_s)
            wall0 = time.perf_counter()
            result = self._step(now_s, k)
            self.publish(result)
            if result.decided:
                self.latency_s.add(time.perf_counter() - wall0)
            self.last_result = result
            self.ticks += 1
            due = math.floor((self.clock.now_s() - t0) / self.period_s)  # last deadline already passed
            if due > k + 1:
                self.ticks_missed += due - k - 1
            k = max(k + 1, due)
