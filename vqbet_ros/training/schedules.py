"""Training schedules as pure functions of progress (docs/vqbet.md §8).

`progress` is the fraction of stage 2 done, in [0, 1]: step / steps, or the share of the wall-clock budget
when `stage2.time_limit_min` is set (whichever is larger).
"""
from __future__ import annotations

import math


def progress(step: int, total_steps: int, elapsed_s: float = 0.0, time_limit_s: float = 0.0) -> float:
    """Fraction of the stage done: by steps, or by time when a limit is set (the larger of the two)."""
    by_steps = step / total_steps if total_steps > 0 else 1.0
    by_time = elapsed_s / time_limit_s if time_limit_s > 0 else 0.0
    return min(1.0, max(by_steps, by_time))


def lr_multiplier(step: int, fraction: float, warmup_steps: int, schedule: str, min_ratio: float) -> float:
    """Linear warm-up over `warmup_steps`, then constant (official) or half-cosine to `min_ratio` (LeRobot)."""
    warm = min(1.0, (step + 1) / warmup_steps) if warmup_steps > 0 else 1.0
    if schedule == "constant":
        return warm
    if schedule == "cosine":
        return warm * (min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * min(fraction, 1.0))))
    raise ValueError(f"`schedule`: unknown {schedule!r}; expected constant or cosine")


def prior_frozen(fraction: float, freeze_fraction: float) -> bool:
    """Official: after `freeze_fraction` of the epochs only the offset head keeps training (docs/vqbet.md §10.3)."""
    return freeze_fraction < 1.0 and fraction >= freeze_fraction
