"""`vqbet-demo`: a trained VQ-BeT policy drives a simulated robot through ROS 2, in one process, no launch files
needed. `--robot pusht` (default) or `--robot so101` (the SO-101 arm, `demo_so101.py`, docs/so101.md).

    vqbet-demo                                    # the checkpoint in models/, 5 episodes, video in outputs/
    vqbet-demo --episodes 50 --seed 100000 --no-video      # the figures vqbet-eval reports, through ROS
    vqbet-demo --protocol gym                     # gym-pusht's episodes (end at success) instead of the paper's
    vqbet-demo --checkpoint path/to/ckpt --realtime        # 10 Hz on the wall clock instead of lockstep
    vqbet-demo --robot so101                      # models/so101_pick places the block on a pad

One rclpy context holds the PushT sim node (`nodes/pusht_sim_node.py`) and the policy node
(`nodes/policy_node.py`) on a multi-threaded executor; they talk only through topics and services, exactly as
two processes would. The demo configures and activates the policy through its lifecycle services, then per
episode calls the policy's `~/reset` and the sim's `~/reset` (episode n starts from seed `--seed` + n, the
state `vqbet-eval` gets for the same seed) and waits for the sim's status to say the episode is done.

By default the sim runs `fast`: it owns `/clock` (the policy uses sim time) and steps in lockstep with the
policy, so results do not depend on this machine's speed. `--realtime` paces the sim at 10 Hz instead.

The checkpoint is wired to the sim from its spec by the robot's wing (`pusht/wiring.py`, `so101/wiring.py`),
as the demo launch files wire it.

Episodes follow `--protocol` as in `vqbet-eval`: `official` (the paper's: its reset distribution, 302 steps,
no early end) or `gym` (gym-pusht's: ends at success or after 300 steps).

Prints per episode and overall: final and max coverage, success (coverage > 0.95 at the end and at any step),
decision latency (policy worker: newest frames to chunk published) and the observation-to-command round trip
through ROS; writes an mp4 of the first episode(s).

The episode loop, the summary, latency and video are shared by both robots; what differs (the sim node and
its parameters, the wiring, what an episode's status means, the video frame) is a `DemoRobot`:
`demo_pusht.PushTDemo`, `demo_so101.SO101Demo` for the arm.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from vqbet_ros.model.checkpoint_search import CheckpointName, find_checkpoint
from vqbet_ros.model.scheduler import EXECUTIONS
from vqbet_ros.nodes.ros_domain import MAX_DOMAIN, free_ros_domain
from vqbet_ros.nodes.sim_clock import CLOCK_LEAD_S

log = logging.getLogger(__name__)

ROBOTS = ("pusht", "so101")  # `--robot`: `demo_pusht.PushTDemo`, `demo_so101.SO101Demo`


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="vqbet-demo", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--robot", choices=ROBOTS, default="pusht",
                   help="the simulated robot: pusht (default) or so101 (the SO-101 arm in MuJoCo; needs the "
                        "package's so101 extra)")
    p.add_argument("--checkpoint", type=Path, default=None,
                   help="checkpoint directory (default: the robot's checkpoint in ./models or the repo's models/: "
                        "pusht_state, so101_pick)")
    p.add_argument("--episodes", type=int, default=5, help="episodes to run (default 5)")
    p.add_argument("--seed", type=int, default=100000,
                   help="episode n starts from seed + n (default 100000, vqbet-eval's default)")
    p.add_argument("--protocol", choices=["official", "gym"], default="official",
                   help="PushT: episode protocol, as vqbet-eval's (default official: 302 steps, no early end)")
    p.add_argument("--max-steps", type=int, default=0, help="PushT: episode length in steps (default: the protocol's)")
    p.add_argument("--task", choices=["place", "lift"], default="place",
                   help="SO-101: place (the block resting on either pad, default) or lift")
    p.add_argument("--episode-s", type=float, default=20.0,
                   help="SO-101: episode length in seconds of sim time (default 20); an episode ends at success")
    p.add_argument("--execution", choices=EXECUTIONS, default="ensemble",
                   help="policy chunk execution (default ensemble, the official rule vqbet-eval uses)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda")
    p.add_argument("--realtime", action="store_true",
                   help="pace the sim on the wall clock (PushT 10 Hz, SO-101 30 Hz) instead of lockstep")
    p.add_argument("--video", type=Path, default=None,
                   help="rollout video path (default outputs/vqbet_demo.mp4, outputs/vqbet_demo_so101.mp4)")
    p.add_argument("--video-episodes", type=int, default=1, help="episodes recorded in the video (default 1)")
    p.add_argument("--no-video", action="store_true", help="write no video")
    p.add_argument("--episode-timeout-s", type=float, default=600.0, help="wall-clock limit per episode")
    p.add_argument("--json", type=Path, default=None, help="also write the summary as JSON here")
    p.add_argument("--ros-domain", type=int, default=None,
                   help="ROS domain of the demo's nodes (default: one no process on this machine uses, with "
                        "discovery kept on this machine, so the demo never drives a robot on your domain)")
    p.add_argument("--quiet", action="store_true", help="only the summary (no per-episode lines, no ROS logs)")
    return p


# ---- checkpoint ------------------------------------------------------------------------------------------
def describe_spec(spec) -> str:
    parts = [f"joints {list(spec.joint_names)}"]
    parts += [f"camera {c} {list(s)}" for c, s in spec.cameras.items()]
    parts += [f"{n} ({s})" for n, s in spec.low_dim.items()]
    return ", ".join(parts)


# ---- one robot's part --------------------------------------------------------------------------------------
class DemoRobot:
    """What `run` needs to know about one robot. The episode loop, summary, latency and video are shared; a
    robot gives its sim node and parameters, its wiring, what its status messages mean for an episode, and
    how a video frame looks. Status messages are `Float64MultiArray`s whose fields (`status_fields`) include
    `episode`, `done`, `stamp_sec` and `stamp_nanosec`."""

    name = ""
    checkpoint_name: CheckpointName  # which checkpoint runs when none is given (`find_checkpoint`)
    title = ""  # in the summary line
    sim_name = ""  # the sim node's name (its ~/reset service)
    status_topic = ""
    trajectory_topic = ""  # where the policy sends its chunks
    joint_names: tuple[str, ...] = ()  # the robot's joints, the order of the planned chunk drawn in the video
    control_hz = 0.0
    default_video = Path()

    @property
    def status_fields(self) -> tuple[str, ...]:
        raise NotImplementedError

    def wiring(self, spec) -> dict:
        raise NotImplementedError

    def policy_params(self, args) -> dict:
        """Policy node parameters the robot's sim relies on, beside the wiring (none by default)."""
        return {}

    def setup(self, args) -> dict:
        """The episode settings, as summary keys."""
        raise NotImplementedError

    def describe_setup(self, args) -> str:
        raise NotImplementedError

    def make_sim(self, context, args, spec, video: bool):
        """The sim node in `context`, fast (lockstep) unless `args.realtime`, no episode started yet; `video`:
        the video will need what the cameras see."""
        raise NotImplementedError

    def attach(self, node, sim, policy, video: VideoFrames | None) -> None:
        """Feed `video` (and anything the robot measures) from `sim` or from subscriptions on the demo's `node`;
        `policy` is the policy node (in this process)."""

    def fold_status(self, entry: dict, status: dict) -> None:
        """Update an episode's `entry` with one status message (field name -> value)."""
        raise NotImplementedError

    def start_episode(self, episode: int) -> None:
        """Called before the episode's reset."""

    def episode_result(self, episode: int, seed: int, entry: dict, wall_s: float, timed_out: bool):
        """The episode's result: an object with `episode`, `seed`, `wall_s`, `timed_out`, `describe()` (its
        line) and `to_dict()`."""
        raise NotImplementedError

    def figures(self, episodes: list) -> dict:
        raise NotImplementedError

    def run_figures(self, args) -> dict:
        """Figures of the whole run beside the episodes' (summary keys)."""
        return {}

    def round_trip_s(self, sim) -> list[float]:
        """Observation published -> its command received, by the sim (fast mode); empty when not measured."""
        return []

    def summary_lines(self, summary: DemoSummary) -> list[str]:
        raise NotImplementedError

    def frame(self, episode: int, planned: np.ndarray | None, *source) -> np.ndarray | None:
        """One video frame from what `attach` hands the video."""
        raise NotImplementedError


def make_robot(name: str) -> DemoRobot:
    if name == "so101":
        from vqbet_ros.demo_so101 import SO101Demo
        return SO101Demo()
    if name == "pusht":
        from vqbet_ros.demo_pusht import PushTDemo
        return PushTDemo()
    raise ValueError(f"`--robot {name}`: expected one of {list(ROBOTS)}")


# ---- results -----------------------------------------------------------------------------------------------
@dataclass
class DemoSummary:
    robot: str
    checkpoint: str
    mode: str
    execution: str
    setup: dict  # the robot's episode settings (PushT: protocol; SO-101: task, episode length)
    episodes: list = field(default_factory=list)  # the robot's episode results
    figures: dict = field(default_factory=dict)  # over the episodes (`DemoRobot.figures`)
    decision_latency_ms: dict = field(default_factory=dict)
    round_trip_ms: dict = field(default_factory=dict)
    lockstep_timeouts: int = 0  # fast mode: steps taken without a fresh command (should be 0)
    policy_ticks_missed: int = 0  # control ticks the policy skipped (should be 0: each is a gap in its history)
    policy_inputs: list[str] = field(default_factory=list)  # the topics the policy node subscribes to
    video: str | None = None
    run_figures: dict = field(default_factory=dict)  # the robot's figures of the whole run (SO-101: smoothness)

    def to_dict(self) -> dict:
        return {"robot": self.robot, "checkpoint": self.checkpoint, "mode": self.mode, "execution": self.execution,
                **self.setup, **self.figures, "decision_latency_ms": self.decision_latency_ms,
                "round_trip_ms": self.round_trip_ms, "lockstep_timeouts": self.lockstep_timeouts,
                "policy_ticks_missed": self.policy_ticks_missed, "policy_inputs": self.policy_inputs,
                "video": self.video, **self.run_figures, "per_episode": [e.to_dict() for e in self.episodes]}


def latency_figures(values_s) -> dict:
    values = np.asarray(list(values_s), dtype=float) * 1e3
    if values.size == 0:
        return {"n": 0}
    return {"n": int(values.size), "mean": float(values.mean()), "p50": float(np.percentile(values, 50)),
            "p99": float(np.percentile(values, 99)), "max": float(values.max())}


# ---- video -------------------------------------------------------------------------------------------------
class VideoFrames:
    """Collects video frames for the first `episodes` episodes: called with what the robot's `attach` hands it
    (the PushT sim's robot at each step, the SO-101's camera images), it keeps `compose(episode, planned,
    *source)`; `planned()` gives the newest chunk the policy planned (K, joints), or None before the first."""

    def __init__(self, episodes: int, compose: Callable[..., np.ndarray | None],
                 planned: Callable[[], np.ndarray | None] = lambda: None):
        self.episodes = episodes
        self.compose = compose
        self.planned = planned
        self.frames: list[np.ndarray] = []
        self.episode = -1
        self._lock = threading.Lock()

    def __call__(self, *source) -> None:
        with self._lock:
            if not 0 <= self.episode < self.episodes:
                return
            episode = self.episode
        frame = self.compose(episode, self.planned(), *source)
        if frame is not None:
            with self._lock:
                self.frames.append(frame)

    def start_episode(self, episode: int) -> None:
        with self._lock:
            self.episode = episode


# ---- the run -----------------------------------------------------------------------------------------------
class _Driver:
    """The demo's own ROS side: the sim status subscription and the service clients it calls."""

    def __init__(self, context, robot: DemoRobot):
        from lifecycle_msgs.srv import ChangeState
        from rclpy.node import Node
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from std_msgs.msg import Float64MultiArray
        from std_srvs.srv import Trigger
        from trajectory_msgs.msg import JointTrajectory

        self.robot = robot
        self.node = Node("vqbet_demo", context=context)
        self._cond = threading.Condition()
        self.status: dict[int, dict] = {}  # episode -> robot's fields, `done`, `stamp_ns` of the newest status
        qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)  # the sims' status and command QoS
        self.node.create_subscription(Float64MultiArray, robot.status_topic, self._on_status, qos)
        # The planned chunks (the policy's preview), drawn in the video.
        self.planned: np.ndarray | None = None
        self.node.create_subscription(JointTrajectory, "/policy_node/preview", self._on_preview, qos)
        self.sim_reset = self.node.create_client(Trigger, f"/{robot.sim_name}/reset")
        self.policy_reset = self.node.create_client(Trigger, "/policy_node/reset")
        self.change_state = self.node.create_client(ChangeState, "/policy_node/change_state")
        self.Trigger, self.ChangeState = Trigger, ChangeState

    def _on_status(self, msg) -> None:
        status = dict(zip(self.robot.status_fields, msg.data))
        episode = int(status["episode"])
        with self._cond:
            entry = self.status.setdefault(episode, {"done": False})
            self.robot.fold_status(entry, status)
            entry["done"] = entry["done"] or status["done"] > 0.5
            entry["stamp_ns"] = int(status["stamp_sec"]) * 1_000_000_000 + int(status["stamp_nanosec"])
            self._cond.notify_all()

    def _on_preview(self, msg) -> None:
        order = [list(msg.joint_names).index(n) for n in self.robot.joint_names]
        self.planned = np.array([[p.positions[i] for i in order] for p in msg.points], dtype=float)  # (W, J)

    def wait_answered(self, episode: int, worker, timeout_s: float) -> bool:
        """Wait until the policy's control loop has ticked on the episode's last observation, so that a reset
        requested now cannot land before that tick and carry the old episode's last frame into the new history."""
        stamp_s = self.status[episode]["stamp_ns"] * 1e-9
        deadline = time.monotonic() + timeout_s
        while worker.last_result is None or worker.last_result.now_s < stamp_s - 1e-9:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.002)
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
            while not self.status.get(episode, {}).get("done"):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(min(remaining, 0.5))
        return True


def demo_ros_domain(requested: int | None) -> int:
    """The demo's ROS domain: `requested`, or one no process on this machine uses, with discovery kept on this
    machine. The demo's sim publishes `/joint_states` and its policy `arm_controller/joint_trajectory`, the
    topics of a real arm: on the user's domain they would reach a robot running there."""
    if requested is not None:
        return requested
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    return free_ros_domain()


def run(args: argparse.Namespace) -> DemoSummary:
    import rclpy
    from lifecycle_msgs.msg import Transition
    from rclpy.executors import MultiThreadedExecutor
    from rclpy.parameter import Parameter

    from vqbet_ros.config_io import load_yaml
    from vqbet_ros.data.video_encoder import write_video
    from vqbet_ros.model.config import VQBeTConfig
    from vqbet_ros.nodes.entry import use_short_switch_interval
    from vqbet_ros.nodes.policy_node import PolicyNode

    robot = make_robot(args.robot)
    checkpoint = find_checkpoint(args.checkpoint, robot.checkpoint_name)
    spec = load_yaml(VQBeTConfig, checkpoint / "config.yaml").spec
    hz = robot.control_hz
    if abs(spec.fps - hz) > 1e-6:
        raise ValueError(f"the checkpoint runs at {spec.fps:g} Hz; {robot.title} is controlled at {hz:g} Hz")
    fast = not args.realtime
    summary = DemoSummary(robot.name, str(checkpoint), "fast (sim time, lockstep)" if fast else f"realtime ({hz:g} Hz)",
                          args.execution, robot.setup(args))
    if not args.quiet:
        print(f"vqbet-demo: {checkpoint} ({describe_spec(spec)})")
        print(f"  sim {summary.mode}, execution {args.execution}, {robot.describe_setup(args)}, {args.episodes} "
              f"episodes from seed {args.seed}")

    policy_params = {"checkpoint": str(checkpoint), "enable_control": True, "execution": args.execution,
                     "device": args.device, "seed": args.seed, "use_sim_time": fast, **robot.wiring(spec),
                     **(robot.policy_params(args) if fast else {})}
    want_video = not args.no_video and args.video_episodes > 0
    video_path = args.video or robot.default_video

    domain = demo_ros_domain(args.ros_domain)
    if not args.quiet:
        print(f"  ROS domain {domain}" + (" (free on this machine; --ros-domain to choose)"
                                          if args.ros_domain is None else ""))
    use_short_switch_interval()  # the nodes share one multi-threaded executor, as in a node process
    context = rclpy.context.Context()
    rclpy.init(args=["--ros-args", "--log-level", "warn" if args.quiet else "info"], context=context,
               domain_id=domain)
    executor = MultiThreadedExecutor(num_threads=4, context=context)
    nodes = []
    video = spinner = None
    try:
        sim = robot.make_sim(context, args, spec, want_video)
        nodes.append(sim)
        policy = PolicyNode(context=context,
                            parameter_overrides=[Parameter(k, value=v) for k, v in policy_params.items()])
        nodes.append(policy)
        driver = _Driver(context, robot)
        nodes.append(driver.node)
        if want_video:
            video = VideoFrames(args.video_episodes, robot.frame, planned=lambda: driver.planned)
        robot.attach(driver.node, sim, policy, video)
        for node in nodes:
            executor.add_node(node)
        spinner = threading.Thread(target=executor.spin, name="vqbet-demo-executor", daemon=True)
        spinner.start()

        driver.transition(Transition.TRANSITION_CONFIGURE, "configure (load the checkpoint)")
        if fast:  # the policy's control loop starts on the sim clock, so it must know the time first
            _wait_for(lambda: policy.get_clock().now().nanoseconds > 0, 30.0, "the sim's /clock")
        driver.transition(Transition.TRANSITION_ACTIVATE, "activate")
        _wait_for(lambda: sim.count_publishers(robot.trajectory_topic) > 0
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
            robot.start_episode(n)
            policy.runtime.reseed(args.seed + n)  # the episode's own sampling seed, as in vqbet-eval
            driver.call(driver.policy_reset, driver.Trigger.Request())
            wall0 = time.monotonic()
            response = driver.call(driver.sim_reset, driver.Trigger.Request())
            done = driver.wait_done(n, args.episode_timeout_s)
            if done:
                driver.wait_answered(n, worker, timeout_s=2.0)
            result = robot.episode_result(n, args.seed + n, dict(driver.status.get(n, {})),
                                          time.monotonic() - wall0, not done)
            summary.episodes.append(result)
            new = policy.runtime.decisions - decisions_before
            decisions_before = policy.runtime.decisions
            latencies += list(worker.latency_s.values)[-new:] if new > 0 else []
            if not args.quiet:
                print(f"  episode {n} ({response.message.split(' from ')[-1]}): {result.describe()} "
                      f"{result.wall_s:5.1f} s" + ("  TIMED OUT" if result.timed_out else ""))
        if video is not None:
            video.start_episode(-1)
        summary.decision_latency_ms = latency_figures(latencies)
        summary.round_trip_ms = latency_figures(robot.round_trip_s(sim)) if fast else {}
        summary.lockstep_timeouts = sim.lockstep_timeouts
        summary.policy_ticks_missed = worker.ticks_missed
        summary.run_figures = robot.run_figures(args)
        driver.transition(Transition.TRANSITION_DEACTIVATE, "deactivate")
    finally:
        executor.shutdown(timeout_sec=5.0)
        if spinner is not None:  # its last wait must end before the nodes it waits on go
            spinner.join(timeout=5.0)
        for node in reversed(nodes):
            node.destroy_node()
        if context.ok():
            rclpy.shutdown(context=context)
    summary.figures = robot.figures(summary.episodes)
    if video is not None and video.frames:
        write_video(video.frames, video_path, hz)
        summary.video = str(video_path)
    return summary


def wait_for_inputs(policy, stamp_s: float, timeout_s: float = 0.5) -> None:
    """A sim's release gate (fast mode, in process): wait until every input of the policy has its newest message
    at `stamp_s`, so /clock advances only once the policy holds the period's observations. A tick that ran on
    the previous period's inputs (a loaded machine delivers slower than the sim's `obs_settle_s`) would make
    two runs of the same seeds differ."""
    at_s = stamp_s + CLOCK_LEAD_S  # where /clock goes; the stamps went through ns rounding
    deadline = time.monotonic() + timeout_s
    while policy.runtime is not None and time.monotonic() < deadline:
        if all(age is not None and age < 2e-6 for age in policy.runtime.input_ages_s(at_s).values()):
            return
        time.sleep(0.0005)


def _wait_for(predicate, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(0.01)


def print_summary(summary: DemoSummary) -> None:
    for line in make_robot(summary.robot).summary_lines(summary):
        print(line)
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
    if args.episodes < 1 or args.max_steps < 0 or not args.episode_s > 0:
        print("vqbet-demo: `--episodes` must be >= 1, `--max-steps` >= 0 and `--episode-s` > 0", file=sys.stderr)
        return 2
    if args.ros_domain is not None and not 0 <= args.ros_domain <= MAX_DOMAIN:
        print(f"vqbet-demo: `--ros-domain` is {args.ros_domain}; a ROS domain is 0 to {MAX_DOMAIN}", file=sys.stderr)
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
