"""The SO-101 arm's part of `vqbet-demo --robot so101` (the episode loop, summary, latency and video are
`demo.py`'s): the sim node and its parameters, the wiring, what an episode's status means, the seam smoothness
and the video frame.

    vqbet-demo --robot so101                                   # models/so101_pick, 5 episodes, a video
    vqbet-demo --robot so101 --checkpoint DIR --episodes 50 --seed 5000 --execution open_loop --no-video

The sim (`nodes/so101_sim_node.py`, docs/so101.md) runs fast, in lockstep with the policy: after each control
period it waits for the next period's command. Which command depends on the execution: temporal ensembling
sends a chunk every period (`lockstep: each_step`); open-loop execution sends one chunk per chunk length, so the
sim runs on while the chunk covers the next period (`lockstep: chunk`), and waits each period for the policy's
per-tick target (`publish_commands` on `TICK_TOPIC`, the sim's `lockstep_topic`): without that the sim ran ahead
of the policy's history sampling (measured: block poses 3 periods old at a tick, "stale", the policy holding the
arm). The sim advances /clock only once the policy has the period's observations (`demo.wait_for_inputs`). Either way
the policy decides at its observation's time, results do not depend on this machine's speed (two runs of the
same seeds give the same episodes), and no period waits for a timeout (`lockstep_timeouts` and
`policy_ticks_missed` in the summary say so).

The wiring and the lockstep parameters (`so101/wiring.py`) are shared with `launch/so101_demo.launch.py`.

Per episode: success (`place`: the block rests on either pad; `lift`: lifted), time to success, the pad used.
Over the run: the success rate with its standard error, and the seam smoothness (`runtime/smoothness.py`) of
the arm's five joints (the gripper's closing on the block is the task, not a seam): the sim reports every
150 Hz tick in process (`tick_observers`: the commanded positions its trajectory executor gave, the measured
velocities), the seams are the stamps of the chunks the policy sent (where each takes over in lockstep; in real
time a chunk takes over when it arrives, a little later).
"""
from __future__ import annotations

import threading
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from vqbet_ros.demo import DemoRobot, DemoSummary, VideoFrames, wait_for_inputs
from vqbet_ros.so101.wiring import CHECKPOINT, TRAJECTORY_TOPIC, policy_lockstep, sim_lockstep, wiring

VIDEO_SCALE = 2  # the 128x96 camera images, enlarged in the video
PLAN_SPAN_RAD = 0.5  # the plan panel: each joint's strip spans its current position +- this


def motion_traces(ticks: list, seams_s: list, start_s: float, end_s: float) -> list:
    """The episode's `MotionTrace`s of the five arm joints from the sim's ticks (stamp, commanded positions,
    measured velocities) within [start_s, end_s] and the stamps of the chunks the policy sent (each takes over
    at its stamp in lockstep). One trace per run of consecutive ticks; none with fewer than 3 ticks."""
    from vqbet_ros.runtime.smoothness import MotionTrace
    from vqbet_ros.so101.scene import ARM_JOINTS, JOINT_NAMES
    from vqbet_ros.so101.trajectory import TIME_EPS_S

    ticks = sorted((t for t in ticks if start_s - TIME_EPS_S <= t[0] <= end_s + TIME_EPS_S), key=lambda t: t[0])
    if len(ticks) < 3:
        return []
    arm = [JOINT_NAMES.index(n) for n in ARM_JOINTS]
    times = np.array([t for t, _, _ in ticks])
    commanded = np.array([c for _, c, _ in ticks])[:, arm]
    velocities = np.array([v for _, _, v in ticks])[:, arm]
    seams = np.array(sorted(seams_s))
    tick = np.median(np.diff(times))
    cuts = [0, *(np.flatnonzero(np.diff(times) > 1.5 * tick) + 1), len(times)]
    return [MotionTrace(times[a:b], commanded[a:b], velocities[a:b],
                        seams[(seams >= times[a] - tick / 2) & (seams <= times[b - 1] + tick / 2)])
            for a, b in zip(cuts[:-1], cuts[1:]) if b - a >= 3]


@dataclass
class SO101Episode:
    episode: int
    seed: int
    success: bool = False
    time_to_success_s: float | None = None  # sim time from the episode's start
    placed_pad: int | None = None  # the pad the block rests on at the end (0 left, 1 right)
    lifted: bool = False  # the block was lifted at some point
    episode_s: float = 0.0  # sim time when the episode ended
    wall_s: float = 0.0
    timed_out: bool = False

    def describe(self) -> str:
        if self.success:
            where = "" if self.placed_pad is None else f" on pad {self.placed_pad}"
            return f"success at {self.time_to_success_s:5.2f} s{where}"
        return f"fail    after {self.episode_s:5.2f} s" + ("  (lifted)" if self.lifted else "")

    def to_dict(self) -> dict:
        return asdict(self)


class SO101Demo(DemoRobot):
    name, title, sim_name, checkpoint_name = "so101", "SO-101", "so101_sim", CHECKPOINT
    status_topic, trajectory_topic = "/so101/status", TRAJECTORY_TOPIC
    default_video = Path("outputs/vqbet_demo_so101.mp4")

    def __init__(self):
        from vqbet_ros.nodes.so101_sim_node import PARAMETERS
        from vqbet_ros.so101.scene import JOINT_NAMES

        self.control_hz, self.joint_names = float(PARAMETERS["control_hz"][0]), tuple(JOINT_NAMES)
        self._lock = threading.Lock()
        self._ticks: list = []  # (stamp s, commanded, velocities) of the current episode, from the sim
        self._positions: np.ndarray | None = None  # the newest measured joint positions
        self._seams: list[float] = []  # stamps of the chunks the policy sent in the current episode
        self._images: dict[str, tuple[float, np.ndarray]] = {}  # camera -> newest (stamp s, rgb)
        self.traces: list = []  # MotionTraces of the finished episodes

    @property
    def status_fields(self) -> tuple[str, ...]:
        from vqbet_ros.nodes.so101_sim_node import STATUS_FIELDS
        return STATUS_FIELDS

    def wiring(self, spec) -> dict:
        return wiring(spec)

    def policy_params(self, args) -> dict:
        # No hold on ~/reset: the sim's own reset holds the arm, and a hold that reached the sim after that reset
        # would count as the new episode's first command (the sim would run a period without the policy's).
        return {"hold_on_fault": False, **policy_lockstep(args.execution)}

    def setup(self, args) -> dict:
        return {"task": args.task, "episode_s": args.episode_s}

    def describe_setup(self, args) -> str:
        return f"task {args.task}, episodes of {args.episode_s:g} s ending at success"

    def make_sim(self, context, args, spec, video: bool):
        from rclpy.parameter import Parameter

        from vqbet_ros.nodes.so101_sim_node import SO101SimNode
        from vqbet_ros.so101.scene import CAMERA_NAMES

        # Only the cameras someone looks at are rendered: rendering is most of the sim's cost (docs/so101.md).
        cameras = [c for c in CAMERA_NAMES if c in spec.cameras or video]
        params = [Parameter("mode", value="realtime" if args.realtime else "fast"),
                  Parameter("first_episode_at_start", value=False), Parameter("seed", value=args.seed),
                  Parameter("task", value=args.task), Parameter("episode_s", value=float(args.episode_s)),
                  Parameter("end_on_success", value=True),
                  *[Parameter(k, value=v) for k, v in sim_lockstep(args.execution).items()],
                  Parameter("cameras", Parameter.Type.STRING_ARRAY, cameras)]
        return SO101SimNode(context=context, parameter_overrides=params)

    def attach(self, node, sim, policy, video: VideoFrames | None) -> None:
        """The sim's ticks in process (its commanded and measured motion, every one, without 150 Hz of
        messages through this process's executor); the chunks and camera images through ROS. In fast mode the
        sim advances /clock only once the policy has the period's observations (`demo.wait_for_inputs`)."""
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import Image
        from trajectory_msgs.msg import JointTrajectory

        sim.tick_observers.append(self._on_tick)
        sim.release_gates.append(lambda stamp_s: wait_for_inputs(policy, stamp_s))
        reliable = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
        node.create_subscription(JointTrajectory, TRAJECTORY_TOPIC, self._on_chunk, reliable)
        if video is not None:
            for camera in ("scene", "wrist"):
                node.create_subscription(Image, f"/{camera}_camera/image_raw",
                                         lambda msg, c=camera: self._on_image(c, msg, video), reliable)

    # --- what the demo hears (the sim's step thread, executor threads) ---
    def _on_tick(self, stamp_s: float, commanded: np.ndarray, positions: np.ndarray, velocities: np.ndarray) -> None:
        with self._lock:
            self._ticks.append((stamp_s, commanded, velocities))
            self._positions = positions

    def _on_chunk(self, msg) -> None:
        from vqbet_ros.nodes.msg_convert import stamp_to_s

        stamp_s = stamp_to_s(msg.header.stamp)
        if msg.points and stamp_s is not None:  # not a hold (reset, fault)
            with self._lock:
                self._seams.append(stamp_s)

    def _on_image(self, camera: str, msg, video: VideoFrames) -> None:
        from vqbet_ros.nodes.msg_convert import image_to_rgb

        rgb, stamp_s = image_to_rgb(msg)
        with self._lock:
            self._images[camera] = (stamp_s, rgb)
            (scene_s, scene), (wrist_s, wrist) = self._images.get("scene", (None, None)), \
                self._images.get("wrist", (None, None))
            if scene_s is None or scene_s != wrist_s:
                return
            measured = self._positions
            t_s = stamp_s - self._ticks[0][0] if self._ticks else 0.0
        video(scene, wrist, measured, t_s)

    # --- episodes ---
    def fold_status(self, entry: dict, status: dict) -> None:
        entry["success"] = status["success"] > 0.5
        entry["time_s"] = float(status["time_s"])
        if entry["success"] and entry.get("time_to_success_s") is None:
            entry["time_to_success_s"] = entry["time_s"]
        entry["placed_pad"] = int(status["placed_pad"]) if status["placed_pad"] >= 0 else None
        entry["lifted"] = entry.get("lifted", False) or status["lifted"] > 0.5

    def start_episode(self, episode: int) -> None:
        with self._lock:
            self._ticks, self._seams, self._images = [], [], {}

    def episode_result(self, episode: int, seed: int, entry: dict, wall_s: float, timed_out: bool) -> SO101Episode:
        if "stamp_ns" in entry:  # the sim reported ticks before this status, so it has them all
            end_s = entry["stamp_ns"] * 1e-9
            with self._lock:
                ticks, seams = list(self._ticks), list(self._seams)
            self.traces += motion_traces(ticks, seams, end_s - entry["time_s"], end_s)
        return SO101Episode(episode, seed, bool(entry.get("success", False)), entry.get("time_to_success_s"),
                            entry.get("placed_pad"), bool(entry.get("lifted", False)), entry.get("time_s", 0.0),
                            wall_s, timed_out)

    def figures(self, episodes: list[SO101Episode]) -> dict:
        n = len(episodes)
        rate = float(np.mean([e.success for e in episodes])) if n else 0.0
        times = [e.time_to_success_s for e in episodes if e.success]
        return {
            "episodes": n,
            "successes": sum(e.success for e in episodes),
            "success_rate": rate,
            "success_rate_se": float(np.sqrt(rate * (1 - rate) / n)) if n else 0.0,  # binomial standard error
            "time_to_success_s_mean": float(np.mean(times)) if times else None,
            "placed_pad_counts": [sum(e.placed_pad == k for e in episodes) for k in (0, 1)],
            "lifted_rate": float(np.mean([e.lifted for e in episodes])) if n else 0.0,
        }

    def run_figures(self, args) -> dict:
        from vqbet_ros.runtime.smoothness import seam_smoothness

        return {"sim_lockstep": "off (real time)" if args.realtime else sim_lockstep(args.execution)["lockstep"],
                "smoothness": seam_smoothness(self.traces, 1.0 / self.control_hz)}

    def summary_lines(self, summary: DemoSummary) -> list[str]:
        f = summary.figures
        n = f["episodes"]
        time_to_success = "-" if f["time_to_success_s_mean"] is None else f"{f['time_to_success_s_mean']:.2f} s"
        lines = [f"SO-101 through ROS 2 (task {summary.setup['task']}), {n} episodes: success {f['successes']}/{n} "
                 f"= {f['success_rate']:.0%} +- {f['success_rate_se']:.0%} (standard error); mean time to success "
                 f"{time_to_success}; pads left/right {f['placed_pad_counts'][0]}/{f['placed_pad_counts'][1]}"]
        s = summary.run_figures.get("smoothness")
        if s and s["samples"]:
            seam, within = s["command_velocity_jump_at_seams"], s["command_velocity_jump_within_chunks"]
            inside = f"{within['mean']:.3f}" if within["n"] else "- (every boundary is a seam)"
            lines.append(f"smoothness ({summary.execution}, arm joints, {s['seams']} seams): commanded velocity "
                         f"jump at seams {seam.get('mean', 0.0):.3f} rad/s mean, {seam.get('max', 0.0):.3f} max; "
                         f"inside chunks {inside}; jerk rms {s['jerk_rms']:.1f} rad/s^3 (after seams "
                         f"{s['jerk_rms_after_seams'] or 0.0:.1f}, elsewhere {s['jerk_rms_elsewhere'] or 0.0:.1f}), "
                         f"speed rms {s['velocity_rms']:.3f} rad/s")
        return lines

    def frame(self, episode: int, planned: np.ndarray | None, scene: np.ndarray, wrist: np.ndarray,
              measured: np.ndarray | None, t_s: float) -> np.ndarray:
        """Scene and wrist cameras side by side (what a policy with cameras sees, enlarged), and a panel with
        the newest planned chunk: one strip per joint, its current position at the strip's middle, the plan's
        points from left to right (light = later)."""
        import cv2

        views = [cv2.resize(image, None, fx=VIDEO_SCALE, fy=VIDEO_SCALE, interpolation=cv2.INTER_NEAREST)
                 for image in (scene, wrist)]
        height = views[0].shape[0]
        panel = np.full((height, height, 3), 255, np.uint8)
        strip = height // len(self.joint_names)
        for j, name in enumerate(self.joint_names):
            top, middle = j * strip, j * strip + strip // 2
            cv2.line(panel, (0, middle), (height - 1, middle), (210, 210, 210), 1)
            cv2.putText(panel, name, (4, top + 11), cv2.FONT_HERSHEY_SIMPLEX, 0.33, (0, 0, 0), 1, cv2.LINE_AA)
            if planned is None or measured is None:
                continue
            for k, value in enumerate(planned[:, j]):
                x = int(round((k + 1) * (height - 8) / len(planned)))
                offset = np.clip((value - measured[j]) / PLAN_SPAN_RAD, -1.0, 1.0)
                y = int(round(middle - offset * (strip // 2 - 2)))
                shade = int(200 * k / max(len(planned) - 1, 1))
                cv2.circle(panel, (x, y), 2, (shade, shade, 255), -1, cv2.LINE_AA)
        cv2.putText(views[0], f"ep {episode}  t {t_s:5.2f} s", (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4,
                    (255, 255, 255), 1, cv2.LINE_AA)
        cv2.putText(panel, "planned chunk", (4, height - 4), cv2.FONT_HERSHEY_SIMPLEX, 0.33, (0, 0, 0), 1,
                    cv2.LINE_AA)
        return np.concatenate([*views, panel], axis=1)
