"""What the sim-node tests' probes share (not a test module): spinning their executor until a condition holds,
and calling the sim's reset service. A probe sets `executor`, `reset_client` and its default `timeout_s`."""
from __future__ import annotations

import time

from std_srvs.srv import Trigger


class SpinningProbe:
    executor = None
    reset_client = None
    timeout_s = 10.0  # default wait for `spin_until`; the service gets half of it to appear

    def spin_until(self, predicate, timeout_s=None):
        deadline = time.monotonic() + (self.timeout_s if timeout_s is None else timeout_s)
        while time.monotonic() < deadline:
            self.executor.spin_once(timeout_sec=0.02)
            if predicate():
                return True
        return False

    def reset(self):
        assert self.reset_client.wait_for_service(timeout_sec=self.timeout_s / 2)
        future = self.reset_client.call_async(Trigger.Request())
        assert self.spin_until(future.done)
        return future.result()


def closing_factory(make):
    """Body of a `probe_factory` fixture: yields `make` (keyword parameters -> a probe), closes every probe made."""
    probes = []

    def tracked(**params):
        probes.append(make(**params))
        return probes[-1]

    yield tracked
    for probe in probes:
        probe.close()
