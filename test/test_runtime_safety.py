"""Safety filter: step limit relative to the measured state, joint-limit clamp, NaN/Inf refusal."""
import numpy as np
import pytest

from vqbet_ros.runtime.safety import SafetyFilter, UnsafeCommand


def test_safety_step_limit_is_relative_to_measured_then_previous_point():
    plan = np.array([[1.0, -1.0], [2.0, -2.0], [2.0, 0.0]])
    out = SafetyFilter(max_delta=[0.1]).apply(plan, measured=np.array([0.0, 0.0]))
    np.testing.assert_allclose(out, [[0.1, -0.1], [0.2, -0.2], [0.3, -0.1]])


def test_safety_joint_limits_clamp_after_step_limit():
    out = SafetyFilter(lower=[-0.5, -0.5], upper=[0.5, 0.5], max_delta=[1.0]).apply(
        np.array([[0.9, 0.0]]), measured=np.array([0.8, 0.0]))
    np.testing.assert_allclose(out, [[0.5, 0.0]])


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_safety_refuses_non_finite_plan(bad):
    with pytest.raises(UnsafeCommand, match="not finite"):
        SafetyFilter().apply(np.array([[0.0, bad]]))


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_safety_step_limit_refuses_non_finite_measured_state(bad):
    with pytest.raises(UnsafeCommand, match="measured joint position is not finite"):
        SafetyFilter(max_delta=[0.1]).apply(np.zeros((2, 2)), measured=np.array([0.0, bad]))


def test_safety_step_limit_needs_measured_state():
    with pytest.raises(ValueError, match="max_delta_per_step"):
        SafetyFilter(max_delta=[0.1]).apply(np.zeros((2, 2)), measured=None)


def test_safety_without_limits_passes_plan_unchanged():
    plan = np.random.default_rng(0).normal(size=(4, 2))
    np.testing.assert_array_equal(SafetyFilter().apply(plan), plan)
