"""Runtime configuration: how a checkpoint is executed on a robot (history, chunk execution, safety, device).

Everything here is a deployment choice; what the policy observes and commands (camera shapes, joint order,
fps, history length, chunk length) comes only from the checkpoint's `FeatureSpec`. The policy node declares
one ROS parameter per field (its default and `described` text) and builds this dataclass from them with
`config_io.from_dict`, so a wrong value is refused with its name.

Args you will most likely change: `execution`, `enable_control`, the safety limits and the max ages.

Args:
    execution: `ensemble` = official VQ-BeT: decide every control step and execute the uniform average of
        the overlapping chunks' current entries (docs/vqbet.md §5, official); `open_loop` = LeRobot:
        execute each chunk to its end, decide again when it is used up (docs/vqbet.md §5, LeRobot).
    device: `auto` (CUDA when available, else CPU), `cuda` or `cpu`.
    compile_mode: `none` (eager), `freeze`: `torch.compile` with inductor freezing, the weights folded into
        the graph as constants (the fast CPU path: 0.87-0.91x of the eager floor on the image configs, quiet
        2-core EPYC without AMX; models/README.md, "The fast CPU path"), or a
        `torch.compile` mode: `default` (slower than eager on CPU for the image config), `reduce-overhead`
        (CUDA graphs on CUDA), `max-autotune`. Compilation happens at configure (warm-up).
    autocast: `none` (fp32) or `bf16`: encoders and prior under bf16 autocast. On CUDA always; on a CPU only
        with native bf16 (AVX512-BF16 or AMX), else it stays fp32 and the runtime says why. `freeze` + `bf16`
        measured 0.48x of eager fp32 on the image config in issue 13 (AMX reported), 0.88-1.03x of the
        floor on the quiet EPYC without AMX.
    parity_tolerance: an optimized path (`compile_mode` or `autocast` not `none`) is used only after its
        chunk on the first observation with every input good is within this of the eager fp32 chunk (largest
        difference, normalized action units: [-1, 1] spans each action's training range, so 0.02 is 1% of
        it); else the runtime falls back to eager fp32 for good and says why (runtime/fast_path.py).
    cpu_threads: torch intra-op threads (process-wide) when > 0; 0 = torch's default. On a busy CPU one
        or two threads avoid oversubscription stalls far longer than the forward pass itself.
    warmup_steps: forward passes run at configure so the first real decision is not the slow one.
    seed: seed of the code-sampling generator (reset on `reset()`); -1 = unseeded.
    image_max_age_s, joint_max_age_s, low_dim_max_age_s: an input whose header stamp is older than this
        at a control tick stops commands (stale), s; 0 = `DEFAULT_MAX_AGE_PERIODS` periods of the
        checkpoint's fps (0.3 s at 10 Hz, 0.1 s at 30 Hz).
    resize_images: centre-crop to the checkpoint's aspect ratio and resize; false = a frame of another size
        is refused.
    enable_control: false = dry run: chunks go to the preview output only.
    joint_lower_limits, joint_upper_limits: per commanded joint (checkpoint `action_names` order), in
        action units (rad/m); empty = no clamp.
    max_delta_per_step: largest change of a commanded joint per control step, relative to the measured
        joint state for the first point and to the previous point after that; one value for all joints or
        one per commanded joint; empty = no limit (needs the commanded joints in the joint states).
    hold_on_fault: when commands stop (stale/bad input, disable), tell the controller to hold position
        instead of letting it finish the last chunk.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from vqbet_ros.config_io import ConfigError, described

# Default max age of an input, in control periods. Two periods (0.2 s at 10 Hz) let one late message on a busy
# machine stop the robot: in 2 of 3 long sim_demo runs an input was 0.220 s old for one tick.
DEFAULT_MAX_AGE_PERIODS = 3


@dataclass
class RuntimeConfig:
    # execution
    execution: Literal["ensemble", "open_loop"] = described(
        "ensemble", "ensemble: decide every step, average the overlapping chunks (official VQ-BeT); "
                    "open_loop: execute each chunk to its end (LeRobot)")
    device: Literal["auto", "cuda", "cpu"] = described("auto", "auto (CUDA when available) | cuda | cpu")
    compile_mode: Literal["none", "freeze", "default", "reduce-overhead", "max-autotune"] = described(
        "none", "none | freeze (inductor, weights as constants: the fast CPU path) | default | "
                "reduce-overhead (CUDA graphs) | max-autotune: torch.compile")
    autocast: Literal["none", "bf16"] = described(
        "none", "none | bf16 (CUDA, or a CPU with AVX512-BF16/AMX; else fp32 and a warning)")
    parity_tolerance: float = described(
        0.02, "an optimized path is used only if its first chunk is within this of eager fp32 "
              "(normalized action units), else eager fp32; see /diagnostics `inference`")
    cpu_threads: int = described(0, "torch CPU threads (process-wide); 0 = torch default")
    warmup_steps: int = described(3, "forward passes at configure")
    seed: int = described(-1, "seed of code sampling, reset by ~/reset; -1 = unseeded")
    # inputs
    image_max_age_s: float = described(
        0.0, "camera frames older than this stop commands (s); 0 = 3 periods of the checkpoint fps")
    joint_max_age_s: float = described(
        0.0, "joint states older than this stop commands (s); 0 = 3 periods of the checkpoint fps")
    low_dim_max_age_s: float = described(
        0.0, "low-dim inputs older than this stop commands (s); 0 = 3 periods of the checkpoint fps")
    resize_images: bool = described(
        True, "centre-crop and resize frames to the checkpoint's size; false: refuse other sizes")
    # safety
    enable_control: bool = described(
        False, "false: dry run, chunks only on preview_topic; ~/enable switches it at run time")
    joint_lower_limits: list[float] = described([], "per commanded joint, checkpoint action order; unset = none")
    joint_upper_limits: list[float] = described([], "per commanded joint, checkpoint action order; unset = none")
    max_delta_per_step: list[float] = described(
        [], "largest change per control step vs the measured joint state (1 or one per joint)")
    hold_on_fault: bool = described(True, "send an empty trajectory (hold) when commands stop")

    def __post_init__(self):
        for name in ("image_max_age_s", "joint_max_age_s", "low_dim_max_age_s"):
            value = getattr(self, name)
            if not (value >= 0 and math.isfinite(value)):
                raise ConfigError(f"`{name}`: must be a number of seconds > 0 (or 0 for "
                                  f"{DEFAULT_MAX_AGE_PERIODS} periods of the checkpoint's fps), got {value}")
        if not (self.parity_tolerance > 0 and math.isfinite(self.parity_tolerance)):
            raise ConfigError(f"`parity_tolerance`: must be a finite number > 0 (normalized action units), "
                              f"got {self.parity_tolerance}")
        if self.cpu_threads < 0:
            raise ConfigError(f"`cpu_threads`: must be >= 0 (0 = torch default), got {self.cpu_threads}")
        if self.warmup_steps < 0:
            raise ConfigError(f"`warmup_steps`: must be >= 0, got {self.warmup_steps}")
        if self.seed < -1:
            raise ConfigError(f"`seed`: must be >= 0, or -1 for unseeded, got {self.seed}")
        for name in ("joint_lower_limits", "joint_upper_limits", "max_delta_per_step"):
            values = getattr(self, name)
            if any(math.isnan(v) for v in values):
                raise ConfigError(f"`{name}`: NaN is not a limit, got {values}")
        if any(v <= 0 or math.isinf(v) for v in self.max_delta_per_step):
            raise ConfigError(f"`max_delta_per_step`: values must be finite and > 0 (leave it empty for no limit), "
                              f"got {self.max_delta_per_step}")
        # +-inf marks an unbounded side (a continuous joint), but a lower limit of +inf (or an upper of -inf)
        # would clamp every command to infinity.
        for name, forbidden in (("joint_lower_limits", math.inf), ("joint_upper_limits", -math.inf)):
            if forbidden in getattr(self, name):
                raise ConfigError(f"`{name}`: {forbidden} would clamp every command to it, got {getattr(self, name)}")
        lo, hi = self.joint_lower_limits, self.joint_upper_limits
        if bool(lo) != bool(hi):
            raise ConfigError("`joint_lower_limits` and `joint_upper_limits`: give both or neither")
        if lo and len(lo) == len(hi) and any(a > b for a, b in zip(lo, hi)):
            raise ConfigError(f"`joint_lower_limits` {lo} exceeds `joint_upper_limits` {hi} for some joint")

    def validate_for(self, action_names: list[str]) -> None:
        """Cross-checks against the checkpoint: one limit per commanded joint."""
        n = len(action_names)
        for name in ("joint_lower_limits", "joint_upper_limits"):
            values = getattr(self, name)
            if values and len(values) != n:
                raise ConfigError(
                    f"`{name}`: the checkpoint commands {n} joints {action_names}, got {len(values)} limits "
                    f"{values}; give one per joint in that order"
                )
        if self.max_delta_per_step and len(self.max_delta_per_step) not in (1, n):
            raise ConfigError(
                f"`max_delta_per_step`: expected 1 or {n} values (joints {action_names}), "
                f"got {self.max_delta_per_step}"
            )

    def max_ages_s(self, dt_s: float) -> dict[str, float]:
        """Stream kind -> max age (s) for a checkpoint whose control period is `dt_s`."""
        given = {"camera": self.image_max_age_s, "joints": self.joint_max_age_s, "low_dim": self.low_dim_max_age_s}
        return {kind: age or DEFAULT_MAX_AGE_PERIODS * dt_s for kind, age in given.items()}
