"""Target schedule: which commanded position each control step follows."""
import numpy as np
import pytest

from vqbet_ros.pusht.schedule import TargetSchedule

DT = 0.1


def chunk(start, n, base=0.0):
    times = start + DT * np.arange(1, n + 1)  # time_from_start = (k+1)/fps
    return times, np.stack([base + np.arange(n), -np.arange(n) - base], axis=1).astype(float)


def test_schedule_executes_point_k_in_kth_step_after_stamp():
    s = TargetSchedule(2)
    s.set_chunk(*chunk(1.0, 5), now_s=1.0)
    targets = [s.target_for_step(1.0 + k * DT, DT)[0] for k in range(5)]
    np.testing.assert_allclose(targets, [0, 1, 2, 3, 4])


def test_schedule_holds_last_point_after_chunk_ends():
    s = TargetSchedule(2)
    s.set_chunk(*chunk(0.0, 3), now_s=0.0)
    for k in range(3):
        s.target_for_step(k * DT, DT)
    np.testing.assert_allclose(s.target_for_step(0.5, DT), [2, -2])
    assert not s.covers(0.5, DT)


def test_schedule_interpolates_between_waypoints():
    s = TargetSchedule(1)
    s.set_chunk(np.array([1.0, 2.0]), np.array([[0.0], [10.0]]), now_s=0.0)
    np.testing.assert_allclose(s.target_for_step(1.4, DT), [5.0])


def test_schedule_splices_new_chunk_at_its_first_point():
    s = TargetSchedule(2)
    s.set_chunk(*chunk(0.0, 5), now_s=0.0)  # points at 0.1 .. 0.5 -> 0..4
    s.set_chunk(*chunk(0.2, 5, base=100.0), now_s=0.1)  # points at 0.3 .. 0.7 -> 100..104
    targets = [s.target_for_step(k * DT, DT)[0] for k in range(7)]
    np.testing.assert_allclose(targets, [0, 1, 100, 101, 102, 103, 104])


def test_schedule_refuses_chunk_entirely_in_past():
    s = TargetSchedule(2)
    assert not s.set_chunk(*chunk(0.0, 3), now_s=5.0)
    assert s.target_for_step(5.0, DT) is None


def test_schedule_direct_target_replaces_chunk_and_holds():
    s = TargetSchedule(2)
    s.set_chunk(*chunk(0.0, 5), now_s=0.0)
    s.set_target(np.array([7.0, 8.0]))
    np.testing.assert_allclose(s.target_for_step(0.0, DT), [7, 8])
    np.testing.assert_allclose(s.target_for_step(3.0, DT), [7, 8])


def test_schedule_covers_only_commanded_steps():
    s = TargetSchedule(2)
    assert not s.covers(0.0, DT)
    s.set_chunk(*chunk(0.0, 2), now_s=0.0)
    assert s.covers(0.0, DT) and s.covers(0.1, DT) and not s.covers(0.2, DT)


@pytest.mark.parametrize("times, positions, match", [
    ([0.1, 0.1], [[0, 0], [1, 1]], "increase"),
    ([0.1], [[0, 0, 0]], "2 values"),
    ([0.1], [[np.nan, 0]], "NaN"),
    ([0.1, 0.2], [[0, 0]], "one time per waypoint"),
])
def test_schedule_refuses_malformed_chunk(times, positions, match):
    with pytest.raises(ValueError, match=match):
        TargetSchedule(2).set_chunk(np.array(times), np.array(positions, dtype=float), now_s=0.0)
