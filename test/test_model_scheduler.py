"""Chunk execution: temporal ensembling against a plain offline average and bit for bit against the sum
`vqbet-eval` has always made, and the open-loop queue."""
import numpy as np
import pytest

from vqbet_ros.model.scheduler import OpenLoopScheduler, TemporalEnsembler, make_scheduler

W, A = 4, 3


def offline_average(chunks: list[np.ndarray], step: int, k: int) -> np.ndarray:
    """Slow obvious version: mean over every chunk j <= step whose entry for step + k exists (j > step+k-W)."""
    entries = [chunks[j][step + k - j] for j in range(max(0, step + k - W + 1), step + 1)]
    return np.mean(entries, axis=0)


def test_temporal_ensembler_equals_offline_uniform_average():
    rng = np.random.default_rng(0)
    chunks = [rng.normal(size=(W, A)) for _ in range(12)]
    ensembler = TemporalEnsembler(W)
    for step, chunk in enumerate(chunks):
        ensembler.add(step, chunk)
        plan = ensembler.plan(step)
        assert plan.shape == (W, A)
        for k in range(W):
            np.testing.assert_allclose(plan[k], offline_average(chunks, step, k), rtol=0, atol=1e-12)


def test_temporal_ensembler_current_entry_is_the_newest_first_sum_bit_for_bit():
    """`vqbet-eval`'s figures stay the same only if the current entry is summed newest chunk first, as its
    own ensembler did before it used this one."""
    rng = np.random.default_rng(1)
    chunks = rng.normal(size=(12, W, A)) * 100
    ensembler = TemporalEnsembler(W)
    for step, chunk in enumerate(chunks):
        ensembler.add(step, chunk)
        ages = range(min(step + 1, W))  # chunk predicted `age` steps ago has its entry for now at index `age`
        newest_first = chunks[step][0].copy()
        for age in ages[1:]:
            newest_first += chunks[step - age][age]
        np.testing.assert_array_equal(ensembler.plan(step)[0], newest_first / len(ages))


def test_temporal_ensembler_current_entry_is_mean_of_last_w_chunks():
    ensembler = TemporalEnsembler(W)
    for step in range(6):
        ensembler.add(step, np.full((W, A), float(step)))
    assert ensembler.plan(5)[0] == pytest.approx(np.full(A, np.mean([2, 3, 4, 5])))


def test_temporal_ensembler_reset_forgets_chunks():
    ensembler = TemporalEnsembler(W)
    ensembler.add(0, np.ones((W, A)))
    ensembler.reset()
    assert ensembler.plan(0) is None


def test_open_loop_scheduler_decides_again_when_chunk_used_up():
    scheduler = OpenLoopScheduler(W)
    decisions = []
    for step in range(10):
        if scheduler.wants_decision(step):
            decisions.append(step)
            scheduler.add(step, np.arange(W * A, dtype=float).reshape(W, A) + 100 * step)
        assert scheduler.plan(step)[0][0] == 100 * decisions[-1] + (step - decisions[-1]) * A
    assert decisions == [0, 4, 8]


def test_open_loop_plan_is_remaining_queue():
    scheduler = OpenLoopScheduler(W)
    chunk = np.arange(W * A, dtype=float).reshape(W, A)
    scheduler.add(3, chunk)
    np.testing.assert_array_equal(scheduler.plan(5), chunk[2:])


def test_unknown_execution_mode_is_refused_by_name():
    with pytest.raises(ValueError, match="`execution`"):
        make_scheduler("sometimes", W)
