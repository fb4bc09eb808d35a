"""`vqbet-demo`: a trained VQ-BeT policy drives PushT through ROS 2, in one process, no launch files needed.

    vqbet-demo                                    # the checkpoint in models/, 5 episodes, video in outputs/
    vqbet-demo --episodes 50 --seed 100000 --no-video      # the figures vqbet-eval reports, through ROS
    vqbet-demo --protocol gym                     # gym-pusht's episodes (end at success) instead of the paper's
    vqbet-demo --checkpoint path/to/ckpt --realtime        # 10 Hz on the wall clock instead of lockstep

One rclpy context holds the PushT sim node (`nodes/pusht_sim_node.py`) and the policy node
(`nodes/policy_node.py`) on a multi-threaded executor; they talk only through topics and services, exactly as
two processes would. The demo configures and activates the policy through its lifecycle services, then per
episode calls the policy's `~/reset` and the sim's `~/reset` (episode n starts from seed `--seed` + n, the
state `vqbet-eval` gets for the same seed) and waits for the sim's status to say the episode is done.

By default the sim runs `fast`: it owns `/clock` (the policy uses sim time) and steps in lockstep with the
policy, so results do not depend on this machine's speed. `--realtime` paces the sim at 10 Hz instead.

The checkpoint is wired to the sim from its spec: its 2 joints map to `agent_x`, `agent_y` (by name, else in
order), its camera to the sim camera, and each low-dim input to the sim topic of that size (18: the Diffusion
Policy keypoints, 16: gym_pusht's keypoints, 3: block pose).

Episodes follow `--protocol` as in `vqbet-eval`: `official` (the paper's: its reset distribution, 302 steps,
no early end) or `gym` (gym-pusht's: ends at success or after 300 steps).

Prints per episode and overall: final and max coverage, success (coverage > 0.95 at the end and at any step),
decision latency (policy worker: newest frames to chunk published) and the observation-to-command round trip
through ROS; writes an mp4 of the first episode(s).
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[1]
LOW_DIM_TOPICS_BY_SIZE = {18: "keypoints", 16: "keypoints_gym", 3: "block_pose"}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="vqbet-demo", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", type=Path, default=None,
                   help="checkpoint directory (default: the PushT checkpoint in ./models or the repo's models/)")
    p.add_argument("--episodes", type=int, default=5, help="episodes to run (default 5)")
    p.add_argument("--seed", type=int, default=100000,
                   help="episode n starts from seed + n (default 100000, vqbet-eval's default)")
    p.add_argument("--protocol", choices=["official", "gym"], default="official",
                   help="episode protocol, as vqbet-eval's (default official: 302 steps, no early end)")
    p.add_argument("--max-steps", type=int, default=0, help="episode length in steps (default: the protocol's)")
    p.add_argument("--execution", choices=["ensemble", "open_loop"], default="ensemble",
                   help="policy chunk execution (default ensemble, the official rule vqbet-eval uses)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda")
    p.add_argument("--realtime", action="store_true", help="pace the sim at 10 Hz on the wall clock")
    p.add_argument("--video", type=Path, default=Path("outputs/vqbet_demo.mp4"), help="rollout video path")
    p.add_argument("--video-episodes", type=int, default=1, help="episodes recorded in the video (default 1)")
    p.add_argument("--no-video", action="store_true", help="write no video")
    p.add_argument("--episode-timeout-s", type=float, default=600.0, help="wall-clock limit per episode")
    p.add_argument("--json", type=Path, default=None, help="also write the summary as JSON here")
    p.add_argument("--quiet", action="store_true", help="only the summary (no per-episode lines, no ROS logs)")
    return p


# ---- checkpoint and wiring ---------------------------------------------------------------------------------
def find_checkpoint(explicit: Path | None, option: str = "--checkpoint ", models_dirs: list[Path] = ()) -> Path:
    """The checkpoint to run: `explicit`, else the one in `models_dirs`, ./models or <repo>/models (PushT
    preferred). Errors name `option`, how the caller's user passes a checkpoint (`checkpoint:=` in a launch)."""
    if explicit is not None:
        if not (explicit / "config.yaml").is_file():
            raise FileNotFoundError(f"`{option}{explicit}` is not a checkpoint directory (no config.yaml)")
        return explicit
    found = []
    searched = list(dict.fromkeys([*models_dirs, Path.cwd() / "models", REPO_ROOT / "models"]))
    for models in searched:
        if models.is_dir():
            found += sorted(p.parent for p in models.glob("*/config.yaml"))
            found += sorted(p.parent for p in models.glob("*/*/config.yaml"))
    if not found:
        raise FileNotFoundError(
            f"no checkpoint found in {', '.join(str(d) for d in searched)}; pass `{option}DIR` (a directory with "
            "config.yaml, model.safetensors, stats.safetensors, e.g. the output of vqbet-train)")
    pusht = [p for p in found if "pusht" in p.name.lower()]
    state = [p for p in pusht if "state" in p.name.lower()]
    return (state or pusht or found)[0]


def wiring(spec) -> dict:
    """Policy node parameters that connect a checkpoint with this spec to the PushT sim's topics."""
    from vqbet_ros.sim.pusht import JOINT_NAMES

    params: dict = {"joint_states_topic": "/joint_states", "trajectory_topic": "/pusht/joint_trajectory"}
    names = list(dict.fromkeys(list(spec.joint_names) + list(spec.action_names)))
    if len(names) != len(JOINT_NAMES):
        raise ValueError(f"the checkpoint's joints {names} are not PushT's 2 joints {list(JOINT_NAMES)}; "
                         "PushT checkpoints observe and command the agent's x, y")
    if not set(names) <= set(JOINT_NAMES):
        params["joint_name_map"] = [f"{ckpt}:{robot}" for ckpt, robot in zip(names, JOINT_NAMES)]
    if len(spec.cameras) > 1:
        raise ValueError(f"the checkpoint has cameras {list(spec.cameras)}; the PushT sim has one camera")
    for camera in spec.cameras:
        params[f"cameras.{camera}.topic"] = "/camera/image_raw"
    for name, size in spec.low_dim.items():
        source = name if name in LOW_DIM_TOPICS_BY_SIZE.values() else LOW_DIM_TOPICS_BY_SIZE.get(size)
        if source is None:
            raise ValueError(f"the checkpoint's low-dim input `{name}` has {size} values; the PushT sim offers "
                             f"{ {v: k for k, v in LOW_DIM_TOPICS_BY_SIZE.items()} } (name: size)")
        params[f"low_dim.{name}.topic"] = f"/pusht/{source}"
    return params


def describe_spec(spec) -> str:
    parts = [f"joints {list(spec.joint_names)}"]
    parts += [f"camera {c} {list(s)}" for c, s in spec.cameras.items()]
    parts += [f"{n} ({s})" for n, s in spec.low_dim.items()]
    return ", ".join(parts)


# ---- results -----------------------------------------------------------------------------------------------
@dataclass
class EpisodeResult:
    episode: int
    seed: int
    final_coverage: float = 0.0
    max_coverage: float = 0.0
    steps: int = 0
    wall_s: float = 0.0
    timed_out: bool = False

    @property
    def success_ever(self) -> bool:
        from vqbet_ros.sim.pusht import is_success
        return bool(is_success(self.max_coverage))

    @property
    def success_end(self) -> bool:
        from vqbet_ros.sim.pusht import is_success
        return bool(is_success(self.final_coverage))


@dataclass
class DemoSummary:
    checkpoint: str
    mode: str
    execution: str
    protocol: str
    episodes: list[EpisodeResult] = field(default_factory=list)
    decision_latency_ms: dict = field(default_factory=dict)
    round_trip_ms: dict = field(default_factory=dict)
    lockstep_timeouts: int = 0  # fast mode: steps taken without a fresh command (should be 0)
    policy_inputs: list[str] = field(default_factory=list)  # the topics the policy node subscribes to
    video: str | None = None

    def figures(self) -> dict:
        final = np.array([e.final_coverage for e in self.episodes])
        best = np.array([e.max_coverage for e in self.episodes])
        return {
            "episodes": len(self.episodes),
            "final_coverage_mean": float(final.mean()) if len(final) else 0.0,
            "max_coverage_mean": float(best.mean()) if len(best) else 0.0,
            "success_ever_rate": float(np.mean([e.success_ever for e in self.episodes])) if self.episodes else 0.0,
            "success_end_rate": float(np.mean([e.success_end for e in self.episodes])) if self.episodes else 0.0,
            "mean_steps": float(np.mean([e.steps for e in self.episodes])) if self.episodes else 0.0,
        }

    def to_dict(self) -> dict:
        episodes = [{**asdict(e), "success_ever": e.success_ever, "success_end": e.success_end}
                    for e in self.episodes]
        return {"checkpoint": self.checkpoint, "mode": self.mode, "execution": self.execution,
                "protocol": self.protocol,
                **self.figures(), "decision_latency_ms": self.decision_latency_ms,
                "round_trip_ms": self.round_trip_ms, "lockstep_timeouts": self.lockstep_timeouts,
                "policy_inputs": self.policy_inputs, "video": self.video, "per_episode": episodes}


def latency_figures(values_s) -> dict:
    values = np.asarray(list(values_s), dtype=float) * 1e3
    if values.size == 0:
        return {"n": 0}
    return {"n": int(values.size), "mean": float(values.mean()), "p50": float(np.percentile(values, 50)),
            "p99": float(np.percentile(values, 99)), "max": float(values.max())}


# ---- video -------------------------------------------------------------------------------------------------
class VideoFrames:
    """Collects video frames (a sim-node step observer) for the first `episodes` episodes: on the left what the
    camera sees (the 96x96 image the policy gets, enlarged), on the right the sim with the newest chunk the policy
    planned drawn as dots (light = later steps) on both views. `planned()` gives that chunk as (W, 2) PushT pixels,
    or None before the first one."""

    def __init__(self, episodes: int, planned: Callable[[], np.ndarray | None] = lambda: None):
        self.episodes = episodes
        self.planned = planned
        self.frames: list[np.ndarray] = []
        self.episode = -1
        self._lock = threading.Lock()

    def __call__(self, robot) -> None:
        with self._lock:
            if not 0 <= self.episode < self.episodes:
                return
            episode = self.episode
        import cv2

        from vqbet_ros.sim.pusht import WORKSPACE_PX

        scene = np.ascontiguousarray(robot.render_frame())
        size = scene.shape[0]
        camera = robot.observe().image
        camera = cv2.resize(camera, (size, size), interpolation=cv2.INTER_NEAREST) if camera is not None \
            else np.zeros_like(scene)
        chunk = self.planned()
        if chunk is not None:
            for view in (camera, scene):
                for k, (x, y) in enumerate(chunk):
                    shade = int(255 * k / max(len(chunk) - 1, 1))
                    centre = (int(round(x * size / WORKSPACE_PX)), int(round(y * size / WORKSPACE_PX)))
                    cv2.circle(view, centre, 4, (255, shade, 0), -1, cv2.LINE_AA)
        text = f"ep {episode}  step {robot.step_index}  coverage {robot.coverage:.2f}"
        cv2.putText(scene, text, (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
        cv2.putText(camera, "policy camera + planned chunk", (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.45,
                    (0, 0, 0), 1, cv2.LINE_AA)
        with self._lock:
            self.frames.append(np.concatenate([camera, scene], axis=1))

    def start_episode(self, episode: int) -> None:
        with self._lock:
            self.episode = episode


def write_video(frames: list[np.ndarray], path: Path, fps: float) -> None:
    """H.264 mp4 (PyAV)."""
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=int(round(fps)))
        stream.height, stream.width = frames[0].shape[:2]
        stream.pix_fmt = "yuv420p"
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


# ---- the run -----------------------------------------------------------------------------------------------
class _Driver:
    """The demo's own ROS side: the sim status subscription and the service clients it calls."""

    def __init__(self, context):
        from lifecycle_msgs.srv import ChangeState
        from rclpy.node import Node
        from std_msgs.msg import Float64MultiArray
        from std_srvs.srv import Trigger
        from trajectory_msgs.msg import JointTrajectory

        from vqbet_ros.nodes.pusht_sim_node import COMMAND_QOS, STATUS_FIELDS

        self.node = Node("vqbet_demo", context=context)
        self._fields = {name: i for i, name in enumerate(STATUS_FIELDS)}
        self._cond = threading.Condition()
        self.status: dict[int, list] = {}  # episode -> [final coverage, max coverage, step, done, stamp ns]
        self.node.create_subscription(Float64MultiArray, "/pusht/status", self._on_status, COMMAND_QOS)
        # The policy's commands, to know it has answered an episode's last observation before it is reset.
        self.answered_ns = 0  # newest command stamp seen
        self.node.create_subscription(JointTrajectory, "/pusht/joint_trajectory", self._on_command, COMMAND_QOS)
        # The planned chunks (the policy's preview), drawn in the video.
        self.planned: np.ndarray | None = None
        self.node.create_subscription(JointTrajectory, "/policy_node/preview", self._on_preview, COMMAND_QOS)
        self.sim_reset = self.node.create_client(Trigger, "/pusht_sim/reset")
        self.policy_reset = self.node.create_client(Trigger, "/policy_node/reset")
        self.change_state = self.node.create_client(ChangeState, "/policy_node/change_state")
        self.Trigger, self.ChangeState = Trigger, ChangeState

    def _on_status(self, msg) -> None:
        f, data = self._fields, msg.data
        episode = int(data[f["episode"]])
        with self._cond:
            entry = self.status.setdefault(episode, [0.0, 0.0, 0, False, 0])
            entry[0] = float(data[f["coverage"]])
            entry[1] = max(entry[1], entry[0])
            entry[2] = int(data[f["step"]])
            entry[3] = entry[3] or data[f["done"]] > 0.5
            entry[4] = int(data[f["stamp_sec"]]) * 1_000_000_000 + int(data[f["stamp_nanosec"]])
            self._cond.notify_all()

    def _on_preview(self, msg) -> None:
        from vqbet_ros.sim.pusht import JOINT_NAMES

        order = [list(msg.joint_names).index(n) for n in JOINT_NAMES]
        self.planned = np.array([[p.positions[i] for i in order] for p in msg.points], dtype=float)  # (W, 2)

    def _on_command(self, msg) -> None:
        stamp_ns = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
        with self._cond:
            self.answered_ns = max(self.answered_ns, stamp_ns)
            self._cond.notify_all()

    def wait_answered(self, episode: int, timeout_s: float) -> bool:
        """Wait until the policy has answered the episode's last observation, so that a reset requested now
        cannot land before that tick and carry the old episode's last frame into the new history."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while self.answered_ns < self.status[episode][4]:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
        return True

    def call(self, client, request, timeout_s: float = 30.0):
        if not client.wait_for_service(timeout_sec=timeout_s):
            raise RuntimeError(f"service `{client.srv_name}` did not appear within {timeout_s:.0f} s")
        future = client.call_async(request)
        deadline = time.monotonic() + timeout_s
        while not future.done():
            if time.monotonic() > deadline:
                raise RuntimeError(f"service `{client.srv_name}` did not answer within {timeout_s:.0f} s")
            time.sleep(0.002)
        return future.result()

    def transition(self, transition_id: int, label: str) -> None:
        request = self.ChangeState.Request()
        request.transition.id = transition_id
        if not self.call(self.change_state, request, timeout_s=120.0).success:
            raise RuntimeError(f"the policy node refused to {label}; see its error line above")

    def wait_done(self, episode: int, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while not self.status.get(episode, [0, 0, 0, False, 0])[3]:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(min(remaining, 0.5))
        return True


def run(args: argparse.Namespace) -> DemoSummary:
    import rclpy
    from lifecycle_msgs.msg import Transition
    from rclpy.executors import MultiThreadedExecutor
    from rclpy.parameter import Parameter

    from vqbet_ros.config_io import load_yaml
    from vqbet_ros.model.config import VQBeTConfig
    from vqbet_ros.nodes.entry import use_short_switch_interval
    from vqbet_ros.nodes.policy_node import PolicyNode
    from vqbet_ros.nodes.pusht_sim_node import PushTSimNode
    from vqbet_ros.sim.pusht import CONTROL_HZ

    checkpoint = find_checkpoint(args.checkpoint)
    spec = load_yaml(VQBeTConfig, checkpoint / "config.yaml").spec
    if abs(spec.fps - CONTROL_HZ) > 1e-6:
        raise ValueError(f"the checkpoint runs at {spec.fps:g} Hz; PushT is controlled at {CONTROL_HZ:g} Hz")
    fast = not args.realtime
    summary = DemoSummary(str(checkpoint), "fast (sim time, lockstep)" if fast else "realtime (10 Hz)",
                          args.execution, args.protocol)
    if not args.quiet:
        print(f"vqbet-demo: {checkpoint} ({describe_spec(spec)})")
        print(f"  sim {summary.mode}, execution {args.execution}, {args.protocol} protocol, {args.episodes} "
              f"episodes from seed {args.seed}")

    sim_params = {"mode": "fast" if fast else "realtime", "autostart": False, "seed": args.seed,
                  "protocol": args.protocol, "max_episode_steps": args.max_steps,
                  "lockstep": "each_step" if args.execution == "ensemble" else "chunk"}
    policy_params = {"checkpoint": str(checkpoint), "enable_control": True, "execution": args.execution,
                     "device": args.device, "seed": args.seed, "use_sim_time": fast, **wiring(spec)}
    video = None if args.no_video or args.video_episodes <= 0 else VideoFrames(args.video_episodes)

    use_short_switch_interval()  # the nodes share one multi-threaded executor, as in a node process
    context = rclpy.context.Context()
    rclpy.init(args=["--ros-args", "--log-level", "warn" if args.quiet else "info"], context=context)
    executor = MultiThreadedExecutor(num_threads=4, context=context)
    nodes = []
    try:
        sim = PushTSimNode(context=context, parameter_overrides=[Parameter(k, value=v) for k, v in sim_params.items()])
        nodes.append(sim)
        if video is not None:
            sim.step_observers.append(video)
        policy = PolicyNode(context=context,
                            parameter_overrides=[Parameter(k, value=v) for k, v in policy_params.items()])
        nodes.append(policy)
        driver = _Driver(context)
        nodes.append(driver.node)
        if video is not None:
            video.planned = lambda: driver.planned
        for node in nodes:
            executor.add_node(node)
        spinner = threading.Thread(target=executor.spin, name="vqbet-demo-executor", daemon=True)
        spinner.start()

        driver.transition(Transition.TRANSITION_CONFIGURE, "configure (load the checkpoint)")
        if fast:  # the policy's control loop starts on the sim clock, so it must know the time first
            _wait_for(lambda: policy.get_clock().now().nanoseconds > 0, 30.0, "the sim's /clock")
        driver.transition(Transition.TRANSITION_ACTIVATE, "activate")
        _wait_for(lambda: sim.count_publishers("/pusht/joint_trajectory") > 0
                  and sim.count_subscribers("/joint_states") > 0, 30.0, "the policy's topics")

        summary.policy_inputs = sorted(sub.topic_name for sub in policy.subscriptions)  # its own, not the graph's
        if not args.quiet:
            print(f"  the policy subscribes to: {', '.join(summary.policy_inputs)}")
        worker = policy.worker
        decisions_before = 0
        latencies: list[float] = []
        for n in range(args.episodes):
            if video is not None:
                video.start_episode(n)
            policy.runtime.reseed(args.seed + n)  # the episode's own sampling seed, as in vqbet-eval
            driver.call(driver.policy_reset, driver.Trigger.Request())
            wall0 = time.monotonic()
            response = driver.call(driver.sim_reset, driver.Trigger.Request())
            done = driver.wait_done(n, args.episode_timeout_s)
            if done:
                driver.wait_answered(n, timeout_s=2.0)
            final, best, steps = driver.status.get(n, [0.0, 0.0, 0])[:3]
            result = EpisodeResult(n, args.seed + n, final, best, steps, time.monotonic() - wall0, not done)
            summary.episodes.append(result)
            new = policy.runtime.decisions - decisions_before
            decisions_before = policy.runtime.decisions
            latencies += list(worker.latency_s.values)[-new:] if new > 0 else []
            if not args.quiet:
                print(f"  episode {n} ({response.message.split(' from ')[-1]}): coverage {final:.3f} "
                      f"(max {best:.3f}) {'success' if result.success_end else 'fail   '} {steps:3d} steps "
                      f"{result.wall_s:5.1f} s" + ("  TIMED OUT" if result.timed_out else ""))
        if video is not None:
            video.start_episode(-1)
        summary.decision_latency_ms = latency_figures(latencies)
        summary.round_trip_ms = latency_figures(sim.command_delays_s) if fast else {}
        summary.lockstep_timeouts = sim.lockstep_timeouts
        driver.transition(Transition.TRANSITION_DEACTIVATE, "deactivate")
    finally:
        executor.shutdown(timeout_sec=5.0)
        for node in reversed(nodes):
            node.destroy_node()
        if context.ok():
            rclpy.shutdown(context=context)
    if video is not None and video.frames:
        write_video(video.frames, args.video, CONTROL_HZ)
        summary.video = str(args.video)
    return summary


def _wait_for(predicate, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(0.01)


def print_summary(summary: DemoSummary) -> None:
    f = summary.figures()
    n = f["episodes"]
    print(f"PushT through ROS 2 ({summary.protocol} protocol), {n} episodes: coverage final "
          f"{f['final_coverage_mean']:.3f}, max {f['max_coverage_mean']:.3f}; success at the end "
          f"{round(f['success_end_rate'] * n)}/{n}, at any step {round(f['success_ever_rate'] * n)}/{n}; "
          f"mean {f['mean_steps']:.0f} steps")
    lat = summary.decision_latency_ms
    if lat.get("n"):
        print(f"decision latency (policy node): p50 {lat['p50']:.1f} ms, p99 {lat['p99']:.1f} ms, "
              f"max {lat['max']:.1f} ms over {lat['n']} decisions")
    rt = summary.round_trip_ms
    if rt.get("n"):
        print(f"observation -> command through ROS: p50 {rt['p50']:.1f} ms, p99 {rt['p99']:.1f} ms")
    if summary.lockstep_timeouts:
        print(f"warning: {summary.lockstep_timeouts} steps ran without a fresh command (lockstep timeout); "
              "the policy fell behind or stopped (see its warnings)")
    if summary.video:
        print(f"video: {summary.video}")


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, format="%(levelname)s %(message)s")
    if args.episodes < 1 or args.max_steps < 0:
        print("vqbet-demo: `--episodes` must be >= 1 and `--max-steps` >= 0", file=sys.stderr)
        return 2
    try:
        summary = run(args)
    except (FileNotFoundError, ValueError, RuntimeError) as err:
        print(f"vqbet-demo: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    print_summary(summary)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(summary.to_dict(), indent=2))
    timed_out = [e.episode for e in summary.episodes if e.timed_out]
    if timed_out:
        print(f"vqbet-demo: episodes {timed_out} did not finish within --episode-timeout-s", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
