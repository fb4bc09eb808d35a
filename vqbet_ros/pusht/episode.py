"""When a PushT episode succeeds (`is_success`, which the robot, `vqbet-eval` and `vqbet-demo` all apply) and
one episode's outcome as `vqbet-eval` (`rollout.py`) and `vqbet-demo` (`demo_pusht.py`) report it. Free of
gym_pusht, so that importing `vqbet-eval` does not load the simulator."""
from __future__ import annotations

from dataclasses import asdict, dataclass

SUCCESS_COVERAGE = 0.95  # gym_pusht's and the official env's threshold: success is coverage strictly above it


def is_success(coverage):
    """The block covers the goal (float or array of coverages)."""
    return coverage > SUCCESS_COVERAGE


@dataclass
class EpisodeResult:
    seed: int  # the episode's initial state (and its code-sampling generator)
    final_coverage: float  # after the last step (the paper's metric, docs/vqbet.md §9)
    max_coverage: float  # over the episode (LeRobot's metric)
    steps: int  # control steps taken

    @property
    def success_end(self) -> bool:
        """The block still covers the goal after the last step."""
        return bool(is_success(self.final_coverage))

    @property
    def success_ever(self) -> bool:
        """The block covered the goal at some step (LeRobot's and gym-pusht's success)."""
        return bool(is_success(self.max_coverage))

    def to_dict(self) -> dict:
        return {**asdict(self), "success_end": self.success_end, "success_ever": self.success_ever}
