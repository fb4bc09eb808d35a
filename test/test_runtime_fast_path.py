"""The optimized inference path behind its parity gate (runtime/fast_path.py), on tiny real checkpoints.

The default-suite tests inject optimized paths through `InferenceParts.propose` (no compilation) or use bf16
autocast without compiling; the tests marked slow compile with inductor (minutes on a loaded 2-core CPU).
"""

import numpy as np
import pytest
import torch
from policy_helpers import make_checkpoint

from vqbet_ros.config_io import ConfigError, from_dict
from vqbet_ros.model.checkpoint import load_checkpoint
from vqbet_ros.runtime import fast_path
from vqbet_ros.runtime.config import RuntimeConfig
from vqbet_ros.runtime.engine import PolicyRuntime
from vqbet_ros.runtime.fast_path import Parts

DT = 0.1


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    """camera front (32x32) + joints; codes sampled (not argmax), so the gate's seeding matters."""
    root = tmp_path_factory.mktemp("ckpt")
    return load_checkpoint(make_checkpoint(root / "c", argmax=False))


def make_runtime(loaded, **overrides) -> PolicyRuntime:
    return PolicyRuntime(loaded, from_dict(RuntimeConfig, {"device": "cpu", "warmup_steps": 0, **overrides}))


def run(runtime, ticks=3) -> list[np.ndarray]:
    """Chunks of `ticks` decisions on fixed random observations."""
    chunks = []
    for k in range(ticks):
        rng = np.random.default_rng(k)
        runtime.put_image("front", rng.integers(0, 256, (32, 32, 3), dtype=np.uint8), k * DT)
        runtime.put_joint_state(rng.uniform(-1, 2, 2), k * DT)
        with torch.inference_mode():
            result = runtime.step(k * DT + 0.01, tick=k)
        assert result.status == "running", result.problems
        chunks.append(result.chunk.positions)
    return chunks


def shifted(parts: Parts, by: float) -> Parts:
    """`parts` whose chunks are moved by `by` (normalized action units): a wrong optimized path."""
    return Parts(parts.cameras, parts.vector, lambda tokens, generator=None: parts.predict_chunk(
        tokens, generator=generator) + by)


@pytest.mark.parametrize("seed", [-1, 7])
def test_fast_path_gate_accepts_a_correct_path_and_runs_it(loaded, seed):
    """An optimized path within tolerance is used from the first observation on; sampled codes compare
    exactly (both runs seeded alike), whether the runtime samples from its own generator or the global one."""
    runtime = make_runtime(loaded, seed=seed)
    calls = {"n": 0}

    def counted(tokens, generator=None):
        calls["n"] += 1
        return runtime.inference.eager.predict_chunk(tokens, generator=generator) + 1e-3

    eager = runtime.inference.eager
    runtime.inference.propose(Parts(eager.cameras, eager.vector, counted), "eager + 1e-3")
    assert runtime.inference.state == "pending"
    run(runtime)
    assert runtime.inference.state == "accepted"
    assert runtime.inference.max_difference == pytest.approx(1e-3, abs=1e-6)
    assert "within" in runtime.inference.reason
    assert calls["n"] == 1 + 3  # the gate, then every decision


def test_fast_path_gate_rejects_a_wrong_path_and_falls_back_to_eager(loaded, caplog):
    reference = run(make_runtime(loaded, seed=3))
    runtime = make_runtime(loaded, seed=3)
    runtime.inference.propose(shifted(runtime.inference.eager, 0.05), "eager + 0.05")
    chunks = run(runtime)
    assert runtime.inference.state == "rejected"
    assert runtime.inference.max_difference == pytest.approx(0.05, abs=1e-6)
    assert "more than `parity_tolerance` 0.02" in runtime.inference.reason
    assert "running eager fp32" in runtime.inference.reason
    assert any("parity gate" in r.getMessage() for r in caplog.records)
    for got, want in zip(chunks, reference):
        np.testing.assert_array_equal(got, want)  # eager fp32, bit for bit


def test_fast_path_gate_tolerance_is_the_config_field(loaded):
    runtime = make_runtime(loaded, parity_tolerance=0.1)
    runtime.inference.propose(shifted(runtime.inference.eager, 0.05), "eager + 0.05")
    run(runtime, ticks=1)
    assert runtime.inference.state == "accepted"


def test_fast_path_gate_rejects_a_path_that_raises_or_is_not_finite(loaded):
    def broken(tokens, generator=None):
        raise RuntimeError("inductor: no kernel")

    runtime = make_runtime(loaded)
    eager = runtime.inference.eager
    runtime.inference.propose(Parts(eager.cameras, eager.vector, broken), "broken")
    run(runtime, ticks=2)
    assert runtime.inference.state == "rejected" and "inductor: no kernel" in runtime.inference.reason

    runtime = make_runtime(loaded)
    runtime.inference.propose(shifted(runtime.inference.eager, float("nan")), "NaN")
    run(runtime, ticks=2)
    assert runtime.inference.state == "rejected" and "nan" in runtime.inference.reason


def test_fast_path_warmup_failure_is_a_rejection_not_a_configure_error(loaded):
    def broken(image):
        raise RuntimeError("compile failed")

    runtime = make_runtime(loaded, warmup_steps=1)
    eager = runtime.inference.eager
    runtime.inference.propose(Parts([broken], eager.vector, eager.predict_chunk), "broken")
    runtime.warmup()
    assert runtime.inference.state == "rejected" and "at warm-up" in runtime.inference.reason
    run(runtime, ticks=1)


def test_fast_path_bf16_autocast_passes_the_gate(loaded, monkeypatch):
    """bf16 autocast without compiling (any CPU computes bf16; only speed needs AVX512-BF16/AMX)."""
    monkeypatch.setattr(fast_path, "cpu_bf16_support", lambda: "AVX512-BF16")
    reference = run(make_runtime(loaded, seed=0))
    runtime = make_runtime(loaded, autocast="bf16", seed=0)
    assert runtime.inference.description == "autocast bf16"
    chunks = run(runtime)
    assert runtime.inference.state == "accepted", runtime.inference.reason
    for got, want in zip(chunks, reference):
        np.testing.assert_allclose(got, want, atol=0.05)  # action units: stats span 3, so 0.02 normalized = 0.03


def test_fast_path_bf16_on_a_cpu_without_native_bf16_stays_fp32_and_says_why(loaded, monkeypatch):
    monkeypatch.setattr(fast_path, "cpu_bf16_support", lambda: None)
    runtime = make_runtime(loaded, autocast="bf16")
    assert runtime.inference.state == "eager"
    assert "neither AVX512-BF16 nor AMX" in runtime.inference.reason


def test_fast_path_default_config_runs_eager_without_a_gate(loaded):
    runtime = make_runtime(loaded)
    run(runtime, ticks=1)
    assert runtime.inference.state == "eager" and runtime.inference.reason is None


@pytest.mark.parametrize("value", [0.0, -1.0, float("inf"), float("nan")])
def test_fast_path_config_refuses_a_bad_tolerance(value):
    with pytest.raises(ConfigError, match="`parity_tolerance`"):
        RuntimeConfig(parity_tolerance=value)


@pytest.mark.slow
@pytest.mark.timeout(1800)  # compiling ResNet-18 took 16 min at nice 15 on the loaded 2-core machine
@pytest.mark.parametrize("autocast", ["none", "bf16"])
def test_fast_path_inductor_freezing_passes_the_gate(loaded, autocast):
    """The real thing: inductor with frozen weights (and bf16 where this CPU has it), compiled at warm-up."""
    if autocast == "bf16" and fast_path.cpu_bf16_support() is None:
        pytest.skip("this CPU has no native bf16")
    reference = run(make_runtime(loaded, seed=0))
    runtime = make_runtime(loaded, compile_mode="freeze", autocast=autocast, seed=0, warmup_steps=1)
    runtime.warmup()
    chunks = run(runtime)
    assert runtime.inference.state == "accepted", runtime.inference.reason
    for got, want in zip(chunks, reference):
        np.testing.assert_allclose(got, want, atol=0.05)
