"""The SO-101 arm's part of `vqbet-demo --robot so101` (the episode loop, summary, latency and video are
`demo.py`'s): the sim node and its parameters, the wiring, what an episode's status means, the seam smoothness
and the video frame.

    vqbet-demo --robot so101                                   # models/so101_pick, 5 episodes, a video
    vqbet-demo --robot so101 --checkpoint DIR --episodes 50 --seed 5000 --execution open_loop --no-video

The sim (`nodes/so101_sim_node.py`, docs/so101.md) runs fast, in lockstep with the policy: after each control
period it waits for the next period's command. Which command depends on the execution: temporal ensembling
sends a chunk every period (`lockstep: each_step`), open-loop execution one chunk per chunk length, so the sim
runs on while the chunk covers the next period (`lockstep: chunk`). Either way the policy decides at its
observation's time, results do not depend on this machine's speed, and no period waits for a timeout
(`lockstep_timeouts` in the summary says so).

Wiring (by name, else a clear error): the checkpoint's joints are SO-101 joints (`so101.scene.JOINT_NAMES`;
its actions must cover all six, the trajectory the sim executes), its cameras `scene` / `wrist`
(`{camera}_camera/image_raw`), its low-dim input `block_pose` (7: x y z qx qy qz qw, the privileged
`so101/block_pose` PoseStamped, as the recorder stores it). Chunks go as `JointTrajectory` to
`arm_controller/joint_trajectory`.

Per episode: success (`place`: the block rests on either pad; `lift`: lifted), time to success, the pad used.
Over the run: the success rate with its standard error, and the seam smoothness (`runtime/smoothness.py`) of
the arm's five joints (the gripper's closing on the block is the task, not a seam): the commanded trajectory is
replayed from the chunks the policy sent (`so101.trajectory.TrajectoryExecutor`, the sim's own rules, exact in
lockstep where each chunk arrives at its stamp) at the 150 Hz joint states, whose velocities are the motion
achieved.
"""
from __future__ import annotations

import importlib.util
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from vqbet_ros.demo import DemoRobot, DemoSummary, VideoFrames

TRAJECTORY_TOPIC = "/arm_controller/joint_trajectory"
BLOCK_POSE = "block_pose"  # the low-dim input the sim provides, and its size (x y z qx qy qz qw)
BLOCK_POSE_SIZE = 7
VIDEO_SCALE = 2  # the 128x96 camera images, enlarged in the video
PLAN_SPAN_RAD = 0.5  # the plan panel: each joint's strip spans its current position +- this


def wiring(spec) -> dict:
    """Policy node parameters that connect a checkpoint with this spec to the SO-101 sim's topics."""
    from vqbet_ros.so101.scene import CAMERA_NAMES, JOINT_NAMES

    unknown = [n for n in dict.fromkeys([*spec.joint_names, *spec.action_names]) if n not in JOINT_NAMES]
    if unknown:
        raise ValueError(f"the checkpoint's joints {unknown} are not SO-101 joints {list(JOINT_NAMES)}; an SO-101 "
                         "checkpoint observes and commands the arm's joints by name (record from the so101 sim)")
    if set(spec.action_names) != set(JOINT_NAMES):
        raise ValueError(f"the checkpoint commands {list(spec.action_names)}; the SO-101 sim executes trajectories "
                         f"of all six joints {list(JOINT_NAMES)}")
    params: dict = {"joint_states_topic": "/joint_states", "trajectory_topic": TRAJECTORY_TOPIC}
    for camera in spec.cameras:
        if camera not in CAMERA_NAMES:
            raise ValueError(f"the checkpoint's camera `{camera}` is not an SO-101 sim camera {list(CAMERA_NAMES)}")
        params[f"cameras.{camera}.topic"] = f"/{camera}_camera/image_raw"
    for name, size in spec.low_dim.items():
        if name != BLOCK_POSE or size != BLOCK_POSE_SIZE:
            raise ValueError(f"the checkpoint's low-dim input `{name}` has {size} values; the SO-101 sim offers "
                             f"`{BLOCK_POSE}` ({BLOCK_POSE_SIZE}: x y z qx qy qz qw)")
        params[f"low_dim.{name}.topic"] = "/so101/block_pose"
        params[f"low_dim.{name}.type"] = "pose_stamped"
    return params


def sim_lockstep(execution: str) -> str:
    """The sim's lockstep rule for a policy executing chunks this way (module docstring)."""
    return "each_step" if execution == "ensemble" else "chunk"


def motion_trace(joint_states: list, chunks: list, start_s: float, end_s: float):
    """The episode's `MotionTrace` of the five arm joints: joint states (stamp, positions, velocities) within
    [start_s, end_s], the command at each replayed from `chunks` (stamp, time_from_start, positions) as the
    sim executes them, a chunk taking over at its stamp. None with fewer than 3 joint states."""
    from vqbet_ros.runtime.smoothness import MotionTrace
    from vqbet_ros.so101.scene import ARM_JOINTS, JOINT_NAMES
    from vqbet_ros.so101.trajectory import TIME_EPS_S, TrajectoryExecutor

    states = {round(t * 1e9): (t, q, v) for t, q, v in joint_states if start_s - TIME_EPS_S <= t <= end_s + TIME_EPS_S}
    states = [states[k] for k in sorted(states)]
    if len(states) < 3:
        return None
    executor = TrajectoryExecutor(states[0][1])
    chunks = sorted((c for c in chunks if c[0] is not None and c[0] >= start_s - TIME_EPS_S), key=lambda c: c[0])
    commanded, seams, k = [], [], 0
    for t, _, _ in states:
        while k < len(chunks) and chunks[k][0] < t - TIME_EPS_S:  # the chunk runs from its stamp on
            stamp, offsets, points = chunks[k]
            try:
                executor.set_trajectory(stamp, offsets, points, now_s=stamp)
                seams.append(stamp)
            except ValueError:  # the sim refused it as well
                pass
            k += 1
        commanded.append(executor.sample(t))
    arm = [JOINT_NAMES.index(n) for n in ARM_JOINTS]
    return MotionTrace(np.array([t for t, _, _ in states]), np.array(commanded)[:, arm],
                       np.array([v for _, _, v in states])[:, arm], np.array(seams))


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
    name, title, sim_name = "so101", "SO-101", "so101_sim"
    status_topic, trajectory_topic = "/so101/status", TRAJECTORY_TOPIC
    default_video = Path("outputs/vqbet_demo_so101.mp4")

    def __init__(self):
        from vqbet_ros.nodes.so101_sim_node import PARAMETERS
        from vqbet_ros.so101.scene import JOINT_NAMES

        self.control_hz, self.joint_names = float(PARAMETERS["control_hz"][0]), tuple(JOINT_NAMES)
        self._lock = threading.Condition()
        self._joints: list = []  # (stamp s, positions, velocities) of the current episode
        self._chunks: list = []  # (stamp s, time_from_start, positions) of the current episode
        self._images: dict[str, tuple[float, np.ndarray]] = {}  # camera -> newest (stamp s, rgb)
        self.traces: list = []  # one MotionTrace per finished episode (fast mode)
        self._fast = True
        self._execution = "ensemble"

    @property
    def status_fields(self) -> tuple[str, ...]:
        from vqbet_ros.nodes.so101_sim_node import STATUS_FIELDS
        return STATUS_FIELDS

    def wiring(self, spec) -> dict:
        return wiring(spec)

    def setup(self, args) -> dict:
        return {"task": args.task, "episode_s": args.episode_s}

    def describe_setup(self, args) -> str:
        return f"task {args.task}, episodes of {args.episode_s:g} s ending at success"

    def make_sim(self, context, args, spec, video: bool):
        from rclpy.parameter import Parameter

        from vqbet_ros.nodes.so101_sim_node import SO101SimNode
        from vqbet_ros.so101.scene import CAMERA_NAMES

        self._fast, self._execution = not args.realtime, args.execution
        # Mesa's software renderer (EGL) and triton each load an LLVM: triton imported after the sim's first
        # frame crashes the process (a segfault in its import), imported before it is fine. The policy node
        # imports it at configure (torchvision -> torch._dynamo -> triton), so import it now.
        if importlib.util.find_spec("triton") is not None:
            import triton  # noqa: F401
        # Only the cameras someone looks at are rendered: rendering is most of the sim's cost (docs/so101.md).
        cameras = [c for c in CAMERA_NAMES if c in spec.cameras or video]
        params = [Parameter("mode", value="realtime" if args.realtime else "fast"),
                  Parameter("autostart", value=False), Parameter("seed", value=args.seed),
                  Parameter("task", value=args.task), Parameter("episode_s", value=float(args.episode_s)),
                  Parameter("end_on_success", value=True), Parameter("lockstep", value=sim_lockstep(args.execution)),
                  Parameter("cameras", Parameter.Type.STRING_ARRAY, cameras)]
        return SO101SimNode(context=context, parameter_overrides=params)

    def attach(self, node, sim, video: VideoFrames | None) -> None:
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import Image, JointState
        from trajectory_msgs.msg import JointTrajectory

        reliable = QoSProfile(depth=200, reliability=ReliabilityPolicy.RELIABLE)  # 150 Hz: keep every one
        node.create_subscription(JointState, "/joint_states", self._on_joints, reliable)
        node.create_subscription(JointTrajectory, TRAJECTORY_TOPIC, self._on_chunk, reliable)
        if video is not None:
            for camera in ("scene", "wrist"):
                node.create_subscription(Image, f"/{camera}_camera/image_raw",
                                         lambda msg, c=camera: self._on_image(c, msg, video), reliable)

    # --- what the demo's node hears (executor threads) ---
    def _on_joints(self, msg) -> None:
        from vqbet_ros.nodes.msg_convert import stamp_to_s

        index = [list(msg.name).index(n) for n in self.joint_names]
        positions, velocities = np.asarray(msg.position)[index], np.asarray(msg.velocity)[index]
        with self._lock:
            self._joints.append((stamp_to_s(msg.header.stamp), positions, velocities))
            self._lock.notify_all()

    def _on_chunk(self, msg) -> None:
        from vqbet_ros.nodes.msg_convert import joint_trajectory_to_points

        if not msg.points:  # a hold (reset, fault): not a chunk
            return
        try:
            chunk = joint_trajectory_to_points(msg, self.joint_names)
        except ValueError:  # the sim refuses it too, and says so
            return
        with self._lock:
            self._chunks.append(chunk)

    def _on_image(self, camera: str, msg, video: VideoFrames) -> None:
        from vqbet_ros.nodes.msg_convert import image_to_rgb

        rgb, stamp_s = image_to_rgb(msg)
        with self._lock:
            self._images[camera] = (stamp_s, rgb)
            (scene_s, scene), (wrist_s, wrist) = self._images.get("scene", (None, None)), \
                self._images.get("wrist", (None, None))
            if scene_s is None or scene_s != wrist_s:
                return
            measured = self._joints[-1][1] if self._joints else None
            t_s = stamp_s - self._joints[0][0] if self._joints else 0.0
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
            self._joints, self._chunks, self._images = [], [], {}

    def episode_result(self, episode: int, seed: int, entry: dict, wall_s: float, timed_out: bool) -> SO101Episode:
        if self._fast and not timed_out and "stamp_ns" in entry:
            end_s = entry["stamp_ns"] * 1e-9
            with self._lock:  # the period's joint states may still be on their way when its status arrived
                deadline = time.monotonic() + 2.0
                while not (self._joints and self._joints[-1][0] >= end_s - 1e-6) and time.monotonic() < deadline:
                    self._lock.wait(0.05)
                joints, chunks = list(self._joints), list(self._chunks)
            trace = motion_trace(joints, chunks, end_s - entry["time_s"], end_s)
            if trace is not None:
                self.traces.append(trace)
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

        smoothness = seam_smoothness(self.traces, 1.0 / self.control_hz) if self._fast else None
        return {"sim_lockstep": sim_lockstep(args.execution) if self._fast else "off (real time)",
                "smoothness": smoothness}

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
