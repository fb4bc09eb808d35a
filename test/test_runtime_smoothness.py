"""Seam smoothness on synthetic traces whose seam jump and jerk are known."""
import numpy as np
import pytest

from vqbet_ros.runtime.smoothness import MotionTrace, seam_smoothness

PERIOD_S = 1 / 30
TICK_S = PERIOD_S / 5


def _trace(slopes_per_chunk, chunk_periods=3, joints=2):
    """Commanded positions of chunks of `chunk_periods` control periods, chunk c moving every joint at
    slopes_per_chunk[c] rad/s; the measured velocity follows the command exactly (a step after each seam)."""
    ticks = len(slopes_per_chunk) * chunk_periods * 5
    t = np.arange(ticks + 1) * TICK_S
    slope = np.repeat(np.asarray(slopes_per_chunk, dtype=float), chunk_periods * 5)  # per interval
    commanded = np.concatenate([[0.0], np.cumsum(slope) * TICK_S])
    velocity = np.concatenate([slope[:1], slope])  # measured at the end of each interval, as a joint state
    seams = np.arange(len(slopes_per_chunk)) * chunk_periods * PERIOD_S
    return MotionTrace(t, np.repeat(commanded[:, None], joints, 1), np.repeat(velocity[:, None], joints, 1), seams)


def test_seam_smoothness_finds_the_velocity_jump_at_seams_and_none_inside_chunks():
    figures = seam_smoothness([_trace([1.0, -1.0, -1.0])], PERIOD_S)
    at_seams, within = figures["command_velocity_jump_at_seams"], figures["command_velocity_jump_within_chunks"]
    # Two interior seams (t = 0.1 s: +1 -> -1, a jump of 2 per joint; t = 0.2 s: no change); the first seam is
    # the trace's start, where no velocity before it is known.
    assert at_seams["n"] == 2 and figures["seams"] == 2
    assert at_seams["max"] == pytest.approx(2.0 * np.sqrt(2))
    assert at_seams["mean"] == pytest.approx(np.sqrt(2))
    # 3 chunks x 3 periods = 9 boundaries, 8 interior, 2 of them seams: 6 knots inside chunks, all smooth.
    assert within["n"] == 6 and within["max"] == pytest.approx(0.0, abs=1e-9)
    assert figures["velocity_rms"] == pytest.approx(np.sqrt(2))


def test_seam_smoothness_puts_the_jerk_of_a_seam_after_it():
    figures = seam_smoothness([_trace([1.0, -1.0])], PERIOD_S)
    # A velocity step of 2 rad/s per joint between two samples: second differences of +-2 around it.
    expected = 2.0 * np.sqrt(2) / TICK_S**2
    assert figures["jerk_p99"] == pytest.approx(expected, rel=0.05)
    assert figures["jerk_rms_after_seams"] > 0
    assert figures["jerk_rms_elsewhere"] == pytest.approx(0.0, abs=1e-6)


def test_seam_smoothness_takes_the_control_grid_from_the_seams():
    trace = _trace([1.0, -1.0, -1.0])
    late = MotionTrace(trace.times_s[1:], trace.commanded[1:], trace.velocities[1:], trace.seams_s)  # one tick on
    figures = seam_smoothness([late], PERIOD_S)
    assert figures["command_velocity_jump_at_seams"]["max"] == pytest.approx(2.0 * np.sqrt(2))
    assert figures["command_velocity_jump_within_chunks"]["max"] == pytest.approx(0.0, abs=1e-9)


def test_seam_smoothness_pools_traces_and_reports_empty_parts():
    smooth = seam_smoothness([_trace([0.5, 0.5]), _trace([0.5])], PERIOD_S)
    assert smooth["command_velocity_jump_at_seams"]["max"] == pytest.approx(0.0, abs=1e-9)
    assert smooth["jerk_rms"] == pytest.approx(0.0, abs=1e-6)
    assert smooth["samples"] == 31 + 16
    empty = seam_smoothness([], PERIOD_S)
    assert empty["command_velocity_jump_at_seams"] == {"n": 0} and empty["jerk_rms"] is None


def test_motion_trace_refuses_mismatched_shapes():
    with pytest.raises(ValueError, match=r"\(N, J\)"):
        MotionTrace(np.arange(4) * TICK_S, np.zeros((3, 2)), np.zeros((3, 2)), [])
    with pytest.raises(ValueError, match="evenly spaced"):
        MotionTrace([0.0, 0.1, 0.5], np.zeros((3, 1)), np.zeros((3, 1)), [])
