"""PushT's part of `vqbet-demo` (the episode loop, summary, latency and video are `demo.py`'s): the sim node and
its parameters, what an episode's status means, the figures and the video frame. The wiring is
`pusht/wiring.py`, shared with `launch/sim_demo.launch.py`.

Episodes follow `--protocol` as in `vqbet-eval`: `official` (the paper's: its reset distribution, 302 steps,
no early end) or `gym` (gym-pusht's: ends at success or after 300 steps). Per episode: final and max
coverage, success (coverage > 0.95) at the end and at any step.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vqbet_ros.demo import DemoRobot, DemoSummary, VideoFrames, wait_for_inputs
from vqbet_ros.pusht.episode import EpisodeResult
from vqbet_ros.pusht.wiring import CHECKPOINT, SIM_NODE, STATUS_FIELDS, STATUS_TOPIC, TRAJECTORY_TOPIC, wiring


@dataclass
class PushTEpisode(EpisodeResult):
    """An episode through ROS: its outcome (as `vqbet-eval`'s) and how the run went."""

    episode: int = 0
    wall_s: float = 0.0
    timed_out: bool = False

    def describe(self) -> str:
        return (f"coverage {self.final_coverage:.3f} (max {self.max_coverage:.3f}) "
                f"{'success' if self.success_end else 'fail   '} {self.steps:3d} steps")


class PushTDemo(DemoRobot):
    name, title, sim_name, checkpoint_name = "pusht", "PushT", SIM_NODE, CHECKPOINT
    status_topic, trajectory_topic, status_fields = STATUS_TOPIC, TRAJECTORY_TOPIC, STATUS_FIELDS
    wiring = staticmethod(wiring)
    default_video = Path("outputs/vqbet_demo.mp4")

    def __init__(self):
        from vqbet_ros.pusht.robot import CONTROL_HZ, JOINT_NAMES

        self.control_hz, self.joint_names = CONTROL_HZ, tuple(JOINT_NAMES)

    def setup(self, args) -> dict:
        return {"protocol": args.protocol}

    def describe_setup(self, args) -> str:
        return f"{args.protocol} protocol"

    def make_sim(self, context, args, spec, video: bool):
        from rclpy.parameter import Parameter

        from vqbet_ros.nodes.pusht_sim_node import PushTSimNode

        params = {"mode": "realtime" if args.realtime else "fast", "first_episode_at_start": False, "seed": args.seed,
                  "protocol": args.protocol, "max_episode_steps": args.max_steps,
                  "lockstep": "each_step" if args.execution == "ensemble" else "chunk"}
        return PushTSimNode(context=context, parameter_overrides=[Parameter(k, value=v) for k, v in params.items()])

    def attach(self, node, sim, policy, video: VideoFrames | None) -> None:
        """The video frames in process; in fast mode the sim advances /clock only once the policy has the
        step's observations (`demo.wait_for_inputs`), so the demo matches `vqbet-eval` step for step."""
        sim.release_gates.append(lambda stamp_s: wait_for_inputs(policy, stamp_s))
        if video is not None:
            sim.step_observers.append(video)

    def fold_status(self, entry: dict, status: dict) -> None:
        entry["final_coverage"] = float(status["coverage"])
        entry["max_coverage"] = max(entry.get("max_coverage", 0.0), entry["final_coverage"])
        entry["steps"] = int(status["step"])

    def episode_result(self, episode: int, seed: int, entry: dict, wall_s: float, timed_out: bool) -> PushTEpisode:
        return PushTEpisode(seed, entry.get("final_coverage", 0.0), entry.get("max_coverage", 0.0),
                            entry.get("steps", 0), episode=episode, wall_s=wall_s, timed_out=timed_out)

    def figures(self, episodes: list[PushTEpisode]) -> dict:
        final = np.array([e.final_coverage for e in episodes])
        best = np.array([e.max_coverage for e in episodes])
        return {
            "episodes": len(episodes),
            "final_coverage_mean": float(final.mean()) if len(final) else 0.0,
            "max_coverage_mean": float(best.mean()) if len(best) else 0.0,
            "success_ever_rate": float(np.mean([e.success_ever for e in episodes])) if episodes else 0.0,
            "success_end_rate": float(np.mean([e.success_end for e in episodes])) if episodes else 0.0,
            "mean_steps": float(np.mean([e.steps for e in episodes])) if episodes else 0.0,
        }

    def round_trip_s(self, sim) -> list[float]:
        return list(sim.command_delays_s)

    def summary_lines(self, summary: DemoSummary) -> list[str]:
        f = summary.figures
        n = f["episodes"]
        return [f"PushT through ROS 2 ({summary.setup['protocol']} protocol), {n} episodes: coverage final "
                f"{f['final_coverage_mean']:.3f}, max {f['max_coverage_mean']:.3f}; success at the end "
                f"{round(f['success_end_rate'] * n)}/{n}, at any step {round(f['success_ever_rate'] * n)}/{n}; "
                f"mean {f['mean_steps']:.0f} steps"]

    def frame(self, episode: int, planned: np.ndarray | None, robot) -> np.ndarray:
        """On the left what the camera sees (the 96x96 image the policy gets, enlarged), on the right the sim,
        the newest planned chunk drawn as dots (light = later steps) on both views."""
        import cv2

        from vqbet_ros.pusht.robot import WORKSPACE_PX

        scene = np.ascontiguousarray(robot.render_frame())
        size = scene.shape[0]
        camera = robot.observe().image
        camera = cv2.resize(camera, (size, size), interpolation=cv2.INTER_NEAREST) if camera is not None \
            else np.zeros_like(scene)
        if planned is not None:
            for view in (camera, scene):
                for k, (x, y) in enumerate(planned):
                    shade = int(255 * k / max(len(planned) - 1, 1))
                    centre = (int(round(x * size / WORKSPACE_PX)), int(round(y * size / WORKSPACE_PX)))
                    cv2.circle(view, centre, 4, (255, shade, 0), -1, cv2.LINE_AA)
        text = f"ep {episode}  step {robot.step_index}  coverage {robot.coverage:.2f}"
        cv2.putText(scene, text, (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
        cv2.putText(camera, "policy camera + planned chunk", (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.45,
                    (0, 0, 0), 1, cv2.LINE_AA)
        return np.concatenate([camera, scene], axis=1)
