"""A PushT episode's outcome and the one success rule that `vqbet-eval` and `vqbet-demo` share."""
import pytest

from vqbet_ros.pusht.episode import EpisodeResult
from vqbet_ros.pusht.rollout import RolloutResult


def test_episode_result_success_is_coverage_strictly_above_the_threshold():
    episode = EpisodeResult(seed=3, final_coverage=0.95, max_coverage=0.951, steps=10)
    assert not episode.success_end and episode.success_ever
    assert episode.to_dict() == {"seed": 3, "final_coverage": 0.95, "max_coverage": 0.951, "steps": 10,
                                 "success_end": False, "success_ever": True}


def test_rollout_summary_gives_each_metric_as_mean_and_standard_error():
    result = RolloutResult("official", [EpisodeResult(0, 0.5, 0.96, 302), EpisodeResult(1, 1.0, 1.0, 300)])
    summary = result.summary()
    assert summary["episodes"] == 2 and summary["protocol"] == "official" and summary["mean_steps"] == 301
    assert summary["final_coverage_mean"] == 0.75
    assert summary["final_coverage_se"] == pytest.approx(0.25)  # sample std 0.354 over sqrt(2)
    assert summary["success_end_mean"] == 0.5 and summary["success_ever_mean"] == 1.0
    assert summary["success_ever_se"] == 0.0
