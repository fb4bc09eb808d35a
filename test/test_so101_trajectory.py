"""joint_trajectory_controller semantics of `so101.trajectory.TrajectoryExecutor`, one rule per test, on a
stepped clock (time is an argument)."""
import numpy as np
import pytest

from vqbet_ros.so101.trajectory import TrajectoryExecutor

J = 2


def executor(hold=(0.0, 0.0)):
    return TrajectoryExecutor(np.array(hold))


def ramp(*values):
    """Points with both joints at each value."""
    return np.array([[v, v] for v in values], dtype=float)


def test_trajectory_interpolates_linearly_between_points_from_the_stamp():
    ex = executor()
    ex.set_trajectory(10.0, [1.0, 2.0], ramp(1.0, 3.0), now_s=10.0)
    for t, expected in [(10.0, 0.0), (10.5, 0.5), (11.0, 1.0), (11.25, 1.5), (12.0, 3.0)]:
        np.testing.assert_allclose(ex.sample(t), [expected] * J)


def test_trajectory_holds_the_last_point_after_its_end():
    ex = executor()
    ex.set_trajectory(0.0, [0.1, 0.2], ramp(1.0, 2.0), now_s=0.0)
    for t in (0.2, 0.5, 100.0):
        np.testing.assert_allclose(ex.sample(t), [2.0, 2.0])
    np.testing.assert_allclose(ex.velocity(0.5), [0.0, 0.0])
    assert ex.end_s == pytest.approx(0.2)


def test_trajectory_zero_stamp_starts_at_arrival():
    ex = executor()
    ex.set_trajectory(None, [1.0], ramp(2.0), now_s=5.0)
    np.testing.assert_allclose(ex.sample(5.5), [1.0, 1.0])
    np.testing.assert_allclose(ex.sample(6.0), [2.0, 2.0])


def test_trajectory_drops_points_already_past_and_moves_on_from_the_current_command():
    ex = executor()
    # Stamped 1 s ago: the points at +0.5 and +1.0 are past; from now (command 0) on to the point at +2.
    ex.set_trajectory(9.0, [0.5, 1.0, 2.0], ramp(5.0, 6.0, 10.0), now_s=10.0)
    np.testing.assert_allclose(ex.sample(10.0), [0.0, 0.0])  # no jump to a past point
    np.testing.assert_allclose(ex.sample(10.5), [5.0, 5.0])
    np.testing.assert_allclose(ex.sample(11.0), [10.0, 10.0])


def test_trajectory_replacement_keeps_the_old_one_until_the_new_start():
    ex = executor()
    ex.set_trajectory(0.0, [1.0, 2.0], ramp(1.0, 2.0), now_s=0.0)
    # A new trajectory stamped at 1.5, received at 0.5: the old one runs until 1.5.
    ex.set_trajectory(1.5, [0.5], ramp(-1.0), now_s=0.5)
    np.testing.assert_allclose(ex.sample(1.0), [1.0, 1.0])
    np.testing.assert_allclose(ex.sample(1.5), [1.5, 1.5])  # the old trajectory's position at the switch
    np.testing.assert_allclose(ex.sample(1.75), [0.25, 0.25])  # halfway from 1.5 to -1.0
    np.testing.assert_allclose(ex.sample(3.0), [-1.0, -1.0])  # the old point at 2.0 is gone


def test_trajectory_replacement_continues_from_the_commanded_position_without_a_jump():
    ex = executor()
    ex.set_trajectory(0.0, [1.0], ramp(4.0), now_s=0.0)
    before = ex.sample(0.5)
    ex.set_trajectory(None, [0.5], ramp(0.0), now_s=0.5)
    np.testing.assert_allclose(ex.sample(0.5), before)
    np.testing.assert_allclose(ex.sample(0.75), before / 2)


def test_trajectory_ending_in_the_past_is_refused_and_the_old_one_kept():
    ex = executor()
    ex.set_trajectory(0.0, [2.0], ramp(2.0), now_s=0.0)
    with pytest.raises(ValueError, match="ends at 1.000 s, before now"):
        ex.set_trajectory(0.0, [1.0], ramp(-5.0), now_s=1.5)
    np.testing.assert_allclose(ex.sample(2.0), [2.0, 2.0])


@pytest.mark.parametrize("offsets, points, reason", [
    ([0.2, 0.1], ramp(1.0, 2.0), "strictly increasing"),
    ([-0.1], ramp(1.0), ">= 0"),
    ([0.1, 0.2], ramp(1.0), "one time_from_start per point"),
    ([0.1], np.array([[1.0, 2.0, 3.0]]), "expected 2 positions"),
    ([0.1], np.array([[np.nan, 0.0]]), "NaN"),
])
def test_trajectory_malformed_is_refused_with_the_reason(offsets, points, reason):
    with pytest.raises(ValueError, match=reason):
        executor().set_trajectory(0.0, offsets, points, now_s=0.0)


def test_trajectory_stop_holds_the_position_commanded_now():
    ex = executor()
    ex.set_trajectory(0.0, [1.0], ramp(1.0), now_s=0.0)
    ex.stop(now_s=0.25)
    np.testing.assert_allclose(ex.sample(0.5), [0.25, 0.25])
    np.testing.assert_allclose(ex.sample(5.0), [0.25, 0.25])


def test_forward_command_replaces_the_trajectory_and_is_held():
    ex = executor()
    ex.set_trajectory(0.0, [1.0], ramp(1.0), now_s=0.0)
    ex.hold(np.array([-0.3, 0.7]))
    for t in (0.0, 0.5, 10.0):
        np.testing.assert_allclose(ex.sample(t), [-0.3, 0.7])


def test_trajectory_velocity_is_the_segment_slope():
    ex = executor()
    ex.set_trajectory(0.0, [1.0, 2.0], ramp(1.0, 3.0), now_s=0.0)
    np.testing.assert_allclose(ex.velocity(0.5), [1.0, 1.0])
    np.testing.assert_allclose(ex.velocity(1.5), [2.0, 2.0])


def test_trajectory_sampled_on_a_stepped_clock_matches_a_plain_interpolation():
    ex = executor()
    offsets = np.arange(1, 9) / 30.0  # a policy chunk: point k at (k + 1) / fps
    points = np.stack([np.sin(offsets), np.cos(offsets)], axis=1)
    ex.set_trajectory(2.0, offsets, points, now_s=2.0)
    ticks = 2.0 + np.arange(0, 41) / 150.0  # the sim's 150 Hz ticks
    sampled = np.array([ex.sample(t) for t in ticks])
    knots_t = np.concatenate([[2.0], 2.0 + offsets])
    knots = np.concatenate([[[0.0, 0.0]], points])
    expected = np.stack([np.interp(ticks, knots_t, knots[:, j]) for j in range(J)], axis=1)
    np.testing.assert_allclose(sampled, expected, atol=1e-12)
