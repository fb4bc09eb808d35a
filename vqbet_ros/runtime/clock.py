"""The runtime's one clock adapter: the monotonic clock for pacing without ROS (tests, benchmarks).

A clock has `now_s()` and `sleep_until(t_s, stop) -> bool` (False when `stop` was set while waiting). The
policy node passes an adapter over the ROS clock instead, so `use_sim_time` paces the loop by `/clock`.
"""
from __future__ import annotations

import threading
import time


class MonotonicClock:
    def now_s(self) -> float:
        return time.monotonic()

    def sleep_until(self, t_s: float, stop: threading.Event) -> bool:
        while True:
            remaining = t_s - time.monotonic()
            if remaining <= 0:
                return not stop.is_set()
            if stop.wait(remaining):
                return False
