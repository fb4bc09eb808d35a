"""The control-loop thread: ticks at fps on its own thread, restarts when the clock jumps."""
import threading
import time

import numpy as np
import pytest
from policy_helpers import make_checkpoint

from vqbet_ros.config_io import from_dict
from vqbet_ros.model.checkpoint import load_checkpoint
from vqbet_ros.runtime.clock import MonotonicClock
from vqbet_ros.runtime.config import RuntimeConfig
from vqbet_ros.runtime.engine import JOINTS, PolicyRuntime
from vqbet_ros.runtime.worker import PolicyWorker

FPS = 10.0
DT = 1 / FPS


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    return load_checkpoint(make_checkpoint(tmp_path_factory.mktemp("ckpt") / "c"))


def make_runtime(loaded) -> PolicyRuntime:
    return PolicyRuntime(loaded, from_dict(RuntimeConfig, {"device": "cpu", "warmup_steps": 0}))


def test_policy_worker_ticks_at_fps_on_its_own_thread(loaded):
    runtime = make_runtime(loaded)
    seen = []
    worker = PolicyWorker(runtime, MonotonicClock(), lambda r: seen.append((threading.current_thread().name, r)))
    worker.start()
    time.sleep(0.55)
    worker.stop()
    assert 5 <= len(seen) <= 7 and {name for name, _ in seen} == {"vqbet-policy-worker"}
    assert all(r.status == "waiting" for _, r in seen)  # no inputs: no command, never an exception
    assert worker.achieved_rate_hz() == pytest.approx(FPS, rel=0.2)


class SteppedClock:
    """A clock the test moves by hand; `sleep_until` jumps straight to the deadline unless told otherwise."""

    def __init__(self, t_s=100.0):
        self.t_s = t_s
        self.jumps = {}  # tick deadline -> time the clock shows instead

    def now_s(self):
        return self.t_s

    def sleep_until(self, t_s, stop):
        if stop.is_set():
            return False
        self.t_s = max(self.t_s, t_s)
        for deadline, jumped in list(self.jumps.items()):
            if abs(t_s - deadline) < 1e-9:
                self.t_s = jumped
                del self.jumps[deadline]
        return True


def test_policy_worker_restarts_grid_and_history_when_clock_jumps_back(loaded):
    runtime = make_runtime(loaded)
    clock = SteppedClock(100.0)
    clock.jumps[100.0 + 3 * DT] = 5.0  # e.g. the simulation was reset
    ticks = []
    def publish(result):
        ticks.append((result.tick, result.now_s))
        if len(ticks) >= 6:
            worker._stop.set()

    worker = PolicyWorker(runtime, clock, publish)
    worker.start()
    worker._thread.join(5.0)
    assert worker.clock_jumps == 1
    assert [t for t, _ in ticks] == [0, 1, 2, 0, 1, 2]
    assert ticks[3][1] == pytest.approx(5.0)


def test_policy_worker_tick_that_raises_reports_error_and_loop_goes_on(loaded, monkeypatch):
    """One tick raises (e.g. the sampler on a bad value): that tick reports `error` with the exception's name,
    the loop keeps ticking and runs normally afterwards."""
    runtime = make_runtime(loaded)
    real_step = runtime.step
    calls = {"n": 0}

    def step(now_s, tick):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("probability tensor contains either `inf`, `nan` or element < 0")
        return real_step(now_s, tick)

    monkeypatch.setattr(runtime, "step", step)
    results = []

    def publish(result):
        results.append(result)
        if len(results) >= 4:
            worker._stop.set()

    worker = PolicyWorker(runtime, SteppedClock(100.0), publish)
    worker.start()
    worker._thread.join(5.0)
    assert worker.error is None and worker.tick_errors == 1
    assert [r.status for r in results] == ["waiting", "error", "waiting", "waiting"]
    assert "RuntimeError: probability tensor" in results[1].problems["policy"]
    assert results[1].generation == runtime.generation  # published, so the node holds


def test_policy_worker_clock_step_back_between_ticks_reanchors_at_once(loaded):
    """The clock steps back while a tick runs (a sim reset between ticks): the next tick runs at once on the
    new time with cleared inputs, rather than sleeping until the old timeline's next deadline."""
    runtime = make_runtime(loaded)
    clock = SteppedClock(1000.0)
    ticks = []

    def publish(result):
        ticks.append(result.now_s)
        if len(ticks) == 3:
            clock.t_s = 100.0
        if len(ticks) >= 5:
            worker._stop.set()

    worker = PolicyWorker(runtime, clock, publish)
    worker.start()
    worker._thread.join(5.0)
    assert ticks[3] == pytest.approx(100.0) and worker.clock_jumps == 1
    assert "node clock stepped back" in runtime.last_clock_event


def test_policy_worker_publishes_no_command_when_an_input_was_refused_during_the_tick(loaded, monkeypatch):
    """A NaN joint state that arrives while a tick decides: that tick is published without chunk or command,
    naming the joints; the next ticks run again on good inputs."""
    runtime = make_runtime(loaded)
    real_step = runtime.step
    joints = len(runtime.joint_input_names)

    def step_with_fault_midway(now_s, tick):
        for camera in runtime.spec.cameras:
            runtime.put_image(camera, np.zeros((32, 32, 3), np.uint8), now_s)
        runtime.put_joint_state(np.zeros(joints), now_s)
        result = real_step(now_s, tick)
        assert result.status == "running"
        if tick == 1:
            runtime.put_joint_state(np.full(joints, np.nan), now_s + 0.01)
        return result

    monkeypatch.setattr(runtime, "step", step_with_fault_midway)
    results = []

    def publish(result):
        results.append(result)
        if len(results) >= 3:
            worker._stop.set()

    worker = PolicyWorker(runtime, SteppedClock(100.0), publish)
    worker.start()
    worker._thread.join(5.0)
    assert [r.status for r in results] == ["running", "bad_input", "running"]
    assert results[1].command is None and results[1].chunk is None and "NaN" in results[1].problems[JOINTS]
