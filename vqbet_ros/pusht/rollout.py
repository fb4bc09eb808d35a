"""Batched PushT rollouts (gym-pusht through `vqbet_ros.pusht.robot.PushTRobot`) for `vqbet-eval`.

Execution follows the official evaluation (docs/vqbet.md §5): the policy is called every control step on the last
h observations (pre-filled with copies of the first frame at reset), and the executed action is the uniform
average of the current-time entries of the last W predicted chunks (temporal ensembling). `execution="open_loop"`
is LeRobot's alternative: run each predicted chunk open-loop, re-plan when it is used up. How episodes start
and end is the protocol's (`pusht/robot.py` `PROTOCOLS`): `official` (302 steps, never ended early, the paper's
protocol) or `gym` (gym-pusht: ends at coverage > 0.95 or after 300 steps).

Each episode is its own experiment: its initial state comes from its seed, and the policy is told each row's
seed so that it can sample from a generator of that episode's own. An episode's result then does not depend
on which other episodes share its batch.

Chunks are executed by the schedulers the runtime also uses (`model/scheduler.py`), one per robot: `ensemble`
is `TemporalEnsembler`, `chunk` is `OpenLoopScheduler`. `vqbet-eval --runtime` runs the deployment runtime itself
instead (`evaluate.runtime_policy`): it returns the runtime's command as a one-step chunk.

Observations come from the robot for the checkpoint's spec: `observation.state` = agent xy;
`observation.environment_state` = the 9 Diffusion-Policy block keypoints (18, what the official state PushT
and the zarr use, docs/vqbet.md §7) or gym-pusht's 8 (16); other low-dim names as `PushTRobot` calls them; a
camera = the 96x96 render (only rendered when the spec has a camera). Coverage is gym-pusht's.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from vqbet_ros import constants
from vqbet_ros.model.config import FeatureSpec
from vqbet_ros.model.scheduler import EXECUTIONS, make_scheduler
from vqbet_ros.pusht.episode import EpisodeResult

log = logging.getLogger(__name__)

# (n, h, ...) observation history per dataset key, the n episodes' seeds -> (n, W, A) chunks in env units.
ChunkPolicy = Callable[[dict[str, np.ndarray], list[int]], np.ndarray]


def observation_frame(obs, spec: FeatureSpec) -> dict[str, np.ndarray]:
    """One frame of dataset-keyed observations from a `PushTObservation`, as the spec wants them."""
    frame: dict[str, np.ndarray] = {}
    if spec.joint_names:
        if spec.state_dim != 2:
            raise ValueError(f"`spec.joint_names` {spec.joint_names}: PushT has 2 joints (agent_x, agent_y)")
        frame[constants.STATE] = obs.agent_xy.astype(np.float32)
    for name, size in spec.low_dim.items():
        if name == "environment_state":
            value = {18: obs.keypoints, 16: obs.keypoints_gym}.get(size)
            if value is None:
                raise ValueError(f"`spec.low_dim.environment_state` of {size}: PushT gives 18 (9 keypoints of "
                                 "the demos) or 16 (gym-pusht's 8)")
        else:
            value = obs.low_dim(name)
        if value.shape != (size,):
            raise ValueError(f"`spec.low_dim.{name}` declares {size} values, PushT gives {value.shape[0]}")
        frame[constants.low_dim_key(name)] = np.asarray(value, dtype=np.float32)
    for cam, (_, h, w) in spec.cameras.items():
        image = obs.image
        if image.shape[:2] != (h, w):
            import cv2
            image = cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA)
        frame[constants.image_key(cam)] = np.ascontiguousarray(image.transpose(2, 0, 1))  # (3, H, W)
    return frame


@dataclass
class RolloutResult:
    protocol: str
    episodes: list[EpisodeResult]  # in the order of the seeds
    frames: list[np.ndarray] = field(default_factory=list)  # rendered frames of the first episode

    def summary(self) -> dict[str, float]:
        def mean_se(values: np.ndarray) -> tuple[float, float]:
            se = float(values.std(ddof=1) / np.sqrt(len(values))) if len(values) > 1 else 0.0
            return float(values.mean()), se

        out: dict[str, float] = {"episodes": len(self.episodes), "protocol": self.protocol}
        for name in ("final_coverage", "max_coverage", "success_end", "success_ever"):
            out[f"{name}_mean"], out[f"{name}_se"] = mean_se(np.array([getattr(e, name) for e in self.episodes],
                                                                      dtype=float))
        out["mean_steps"] = float(np.mean([e.steps for e in self.episodes]))
        return out


def rollout(policy: ChunkPolicy, spec: FeatureSpec, seeds: list[int], protocol: str = "official",
            execution: str = "ensemble", batch: int = 50, record_first: bool = False, video_size: int = 384,
            max_steps: int | None = None) -> RolloutResult:
    """One episode per seed; `batch` robots run in lock-step so the policy sees batched inputs.
    `max_steps` overrides the protocol's episode length (for short tests)."""
    from vqbet_ros.pusht.robot import PushTRobot

    if execution not in EXECUTIONS:
        raise ValueError(f"`execution`: expected one of {list(EXECUTIONS)}, got {execution!r}")
    h, w = spec.n_obs_steps, spec.chunk_size
    final, best, steps, frames = [], [], [], []
    for first in range(0, len(seeds), batch):
        group = [int(s) for s in seeds[first:first + batch]]
        robots = [PushTRobot(video_size=video_size, protocol=protocol, max_episode_steps=max_steps,
                             render_camera=bool(spec.cameras)) for _ in group]
        history = []
        for robot, seed in zip(robots, group):
            frame = observation_frame(robot.reset(seed=seed), spec)
            history.append([frame] * h)  # pre-filled with the first frame (docs/vqbet.md §3)
        n = len(robots)
        schedulers = [make_scheduler(execution, w) for _ in robots]
        coverage = np.array([r.coverage for r in robots])
        max_cov = coverage.copy()
        done = np.array([r.done for r in robots])
        n_steps = np.zeros(n, dtype=int)
        record = record_first and first == 0
        if record:
            frames.append(robots[0].render_frame())
        t = 0  # control step
        while not done.all():
            if schedulers[0].wants_decision(t):  # the robots run in lock-step: all decide at the same steps
                batch_obs = {k: np.stack([np.stack([f[k] for f in hist]) for hist in history])
                             for k in history[0][0]}  # (n, h, ...)
                chunks = policy(batch_obs, group)  # (n, W, A)
                for scheduler, chunk in zip(schedulers, chunks):
                    scheduler.add(t, chunk)
            actions = [scheduler.plan(t)[0] for scheduler in schedulers]  # (n, A): what runs now
            t += 1
            for i, robot in enumerate(robots):
                if done[i]:
                    continue
                obs = robot.step(actions[i])
                coverage[i] = obs.coverage
                max_cov[i] = max(max_cov[i], obs.coverage)
                n_steps[i] += 1
                done[i] = robot.done
                history[i] = history[i][1:] + [observation_frame(obs, spec)]
                if record and i == 0:
                    frames.append(robot.render_frame())
        for robot in robots:
            robot.close()
        final.extend(coverage)
        best.extend(max_cov)
        steps.extend(n_steps)
        log.info("episodes %d-%d: mean final coverage %.3f", first, first + n - 1, float(coverage.mean()))
    episodes = [EpisodeResult(int(seed), float(f), float(m), int(n))
                for seed, f, m, n in zip(seeds, final, best, steps)]
    return RolloutResult(protocol, episodes, frames)
