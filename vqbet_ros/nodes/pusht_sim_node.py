"""PushT as a ROS 2 robot: camera, joint states, episode status and extra low-dim observations out; trajectory
chunks and direct targets in; episodes reset by service. Real time, or as fast as the loop allows with `/clock`.

Interface (topic names are parameters, all relative so a namespace or remap moves them):
- publishes `camera/image_raw` (`sensor_msgs/Image`, rgb8, 96x96), `joint_states` (`sensor_msgs/JointState`,
  joints `agent_x`, `agent_y` in PushT pixels), `pusht/status` (`std_msgs/Float64MultiArray`, values in the
  order of `pusht.wiring.PushTStatus`: coverage, success, step, episode, done, stamp_sec, stamp_nanosec,
  the last two the exact stamp of the observation it belongs to, since the message has no header; the
  layout's dim label lists the fields),
  extra low-dim observations `pusht/keypoints` (18), `pusht/keypoints_gym` (16), `pusht/block_pose` (3) as
  `Float64MultiArray`, and `pusht/block_pose_stamped` (`geometry_msgs/PoseStamped`, yaw as quaternion).
  Every stamped message of one instant carries the same stamp: the sim time of that observation.
- subscribes `pusht/joint_trajectory` (`trajectory_msgs/JointTrajectory`: waypoint i is due at header.stamp +
  time_from_start, a zero stamp meaning "now"; executed by `pusht.schedule.TargetSchedule`; an empty one means
  "hold where you are", as for a joint_trajectory_controller) and `pusht/commands`
  (`std_msgs/Float64MultiArray`, [agent_x, agent_y], a target held until the next command).
- service `~/reset` (`std_srvs/Trigger`): starts the next episode. Episode n (counting every started episode
  from 0) draws its initial state from seed `seed + n` under the parameter `protocol`, the same state
  `vqbet-eval --protocol <same>` gets for that seed; when the parameter `initial_state` holds 5 values the episode starts there instead
  (the replay teleop sets it to a demo's first state).

Time. `mode: realtime` steps on absolute deadlines of the monotonic clock at 10 Hz and stamps with ROS time.
`mode: fast` owns the clock: it publishes `rosgraph_msgs/Clock` (the other nodes run with use_sim_time) and
steps in lockstep with whoever commands it. After each step it publishes the observations, waits `obs_settle_s`
so they are delivered, then advances `/clock` to their stamp; it steps again only once the command for the
next step is known, or after `lockstep_timeout_s` of wall time without one (then the last target is held).
"Known" depends on the commander (parameter `lockstep`):
- `each_step` (default): a command (chunk or target) arrived since the last step. For a policy that decides
  every step (the official temporal ensembling, the policy node's default) and for teleop at the control rate.
- `chunk`: the scheduled waypoints reach the end of the next step. For a policy that executes each chunk
  open-loop and decides again when it is used up.
- `off`: step as fast as possible.
So a policy that decides at its observation time is never late, whatever its inference time.

An episode's clock starts with its first command: until then the sim shows the robot at its initial state,
restamped at the control rate (in fast mode, one step of /clock per `lockstep_timeout_s`), so a policy that is
still loading or filling its history loses no step of the episode.

An episode ends after the protocol's number of steps (or `max_episode_steps`), and under the `gym` protocol
also when the block covers the goal (success); the sim then holds
still (in real time it keeps publishing its sensors) until `~/reset`, or resets itself with `auto_reset`.

The loop itself (episodes, commands, lockstep, stamps and status) is ROS-free, with time as an argument:
`pusht.sim.PushTSim`; this node adds the clocks, the stepping thread and the messages.

Deviation: this node is a plain (unmanaged) node: it stands in for robot drivers, which are up as long as the
robot is; the managed nodes are the policy and the recorder (docs/design.md "ROS interface").
"""
from __future__ import annotations

import math
import threading
import time
from collections import deque
from dataclasses import replace
from typing import Callable

from geometry_msgs.msg import PoseStamped
from rcl_interfaces.msg import SetParametersResult
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Float64MultiArray, MultiArrayDimension
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory

from vqbet_ros.config_io import ConfigError
from vqbet_ros.nodes.entry import SIM_RENAMED, run_node
from vqbet_ros.nodes.msg_convert import float64_multiarray_to_array, joint_trajectory_to_points
from vqbet_ros.nodes.parameters import NodeParameters
from vqbet_ros.nodes.sim_clock import CLOCK_LEAD_S
from vqbet_ros.nodes.trajectory import seconds_to_time
from vqbet_ros.pusht.robot import JOINT_NAMES, LOW_DIM_SIZES, PROTOCOLS, PushTRobot
from vqbet_ros.pusht.sim import FAST_CLOCK_START_S, LOCKSTEP_MODES, PushTSim, SimSnapshot
from vqbet_ros.pusht.wiring import SIM_NODE, STATUS_FIELDS

# Sensors: RELIABLE, so both sensor-data (BEST_EFFORT) and RELIABLE subscribers (a recorder) match
# (docs/ros2.md §2); a short queue, the newest frame is what matters.
SENSOR_QOS = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
# Commands and status: RELIABLE, depth 10 (controllers' default).
COMMAND_QOS = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
# /clock: only the newest tick matters; RELIABLE also matches rclpy's BEST_EFFORT clock subscription.
CLOCK_QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE)


PARAMETERS = {  # name: (default, description[, allowed values: NodeParameters.declare's choices / low / high])
    "mode": ("realtime", "`realtime` (10 Hz on the wall clock) or `fast` (publishes /clock, lockstep)",
             {"choices": ("realtime", "fast")}),
    # seed + n seeds NumPy's legacy generator (< 2**32)
    "seed": (0, "episode n starts from the seeded random state seed + n (as vqbet-eval's env.reset(seed))",
             {"low": 0, "high": 2**31 - 1}),
    "first_episode_at_start": (True, "ready episode 0 at start-up (it starts with the first command); false: wait "
                                     "for ~/reset"),
    "auto_reset": (False, "start the next episode by itself when one ends"),
    "protocol": ("official", "how episodes start and end (pusht/robot.py PROTOCOLS): official = the public VQ-BeT "
                 "evaluation's resets, 302 steps, no end at success; gym = gym_pusht's, ends at success or 300 steps",
                 {"choices": tuple(PROTOCOLS)}),
    "max_episode_steps": (0, "episode length in control steps; 0 = the protocol's (official 302, gym 300)",
                          {"low": 0}),
    "image_size": (96, "camera image height = width in pixels", {"low": 8, "high": 1024}),
    "lockstep": ("each_step", "fast mode: step when `each_step` a new command arrived, when the `chunk` covers "
                              "the next step, or `off` (as fast as possible)", {"choices": LOCKSTEP_MODES}),
    "lockstep_timeout_s": (2.0, "fast mode: wall seconds to wait for a command before holding the last target",
                           {"low": 1e-3, "high": 3600.0}),
    "obs_settle_s": (0.005, "fast mode: wall seconds between publishing observations and advancing /clock",
                     {"low": 0.0, "high": 1.0}),
    "frame_id": ("pusht_world", "frame of the camera image and the block pose"),
    "image_topic": ("camera/image_raw", "camera output (sensor_msgs/Image rgb8)"),
    "joint_states_topic": ("joint_states", "agent position as joints agent_x, agent_y"),
    "status_topic": ("pusht/status", "Float64MultiArray [coverage, success, step, episode, done, stamp_sec, "
                                     "stamp_nanosec]"),
    "low_dim_topic_prefix": ("pusht/", "prefix of the low-dim topics keypoints, keypoints_gym, block_pose"),
    "block_pose_stamped_topic": ("pusht/block_pose_stamped", "block pose as geometry_msgs/PoseStamped"),
    "trajectory_topic": ("pusht/joint_trajectory", "JointTrajectory chunks to execute by time"),
    "command_topic": ("pusht/commands", "Float64MultiArray targets [agent_x, agent_y]"),
}
# May change while the node runs (checked when set); the others are read at start-up only.
DYNAMIC_PARAMETERS = ("seed", "auto_reset", "lockstep_timeout_s", "initial_state")


class PushTSimNode(Node):
    """PushT robot node; see the module docstring for its interface."""

    def __init__(self, **kwargs):
        super().__init__(SIM_NODE, **kwargs)
        self._params = NodeParameters(self)
        self._params.declare_all(PARAMETERS)
        self._params.declare("initial_state", Parameter.Type.DOUBLE_ARRAY, "5 values [agent x, y, block x, y, "
                             "angle]: every reset starts there; empty: use the seed")
        try:  # before anything is built; a ConfigError ends the process with one line (entry.run_node)
            p = self._read_parameters()
        except ConfigError:
            super().destroy_node()  # else the context destroys this half-built node at shutdown
            raise
        self.add_on_set_parameters_callback(self._check_parameters)
        self._fast = p["mode"] == "fast"
        self._p = p

        self._robot = PushTRobot(image_size=p["image_size"], protocol=p["protocol"],
                                 max_episode_steps=p["max_episode_steps"] or None)
        self._dt_s = self._robot.dt_s
        self._sim = PushTSim(self._robot, lockstep=p["lockstep"], fast=self._fast)
        self._cond = threading.Condition()  # guards the sim (robot, schedule, episode); wakes the stepping loop
        self._stop = threading.Event()
        self._running = False  # an episode is under way (false before the first reset and after it ends)
        self._clock_s = FAST_CLOCK_START_S
        self._wall_t0 = time.monotonic()  # monotonic time of the current episode's step 0 (real-time pacing)
        self.lockstep_timeouts = 0
        # Fast mode: wall seconds from releasing an observation (/clock) to the first command after it, i.e. the
        # decision latency seen through ROS (messaging included). The last 10000 are kept.
        self.command_delays_s: deque[float] = deque(maxlen=10000)
        self._released_wall: float | None = None
        # In-process observers called with the robot after every reset and step (under the lock, on the stepping
        # thread): `vqbet-demo` renders its video frames there. Keep them quick.
        self.step_observers: list[Callable[[PushTRobot], None]] = []
        # Fast mode, in process: gate(stamp_s) returns once a subscriber has the step's observations, before
        # /clock advances to them (obs_settle_s is a guess; a loaded machine can take longer).
        self.release_gates: list[Callable[[float], None]] = []

        self._image_pub = self.create_publisher(Image, p["image_topic"], SENSOR_QOS)
        self._joint_pub = self.create_publisher(JointState, p["joint_states_topic"], SENSOR_QOS)
        self._status_pub = self.create_publisher(Float64MultiArray, p["status_topic"], COMMAND_QOS)
        self._low_dim_pubs = {name: self.create_publisher(Float64MultiArray, p["low_dim_topic_prefix"] + name,
                                                          SENSOR_QOS) for name in LOW_DIM_SIZES}
        self._pose_pub = self.create_publisher(PoseStamped, p["block_pose_stamped_topic"], SENSOR_QOS)
        self._clock_pub = self.create_publisher(Clock, "/clock", CLOCK_QOS) if self._fast else None
        self.create_subscription(JointTrajectory, p["trajectory_topic"], self._on_trajectory, COMMAND_QOS)
        self.create_subscription(Float64MultiArray, p["command_topic"], self._on_command, COMMAND_QOS)
        self.create_service(Trigger, "~/reset", self._on_reset)

        with self._cond:
            self._start_episode_locked(count=p["first_episode_at_start"])
            self._running = p["first_episode_at_start"]
        self._thread = threading.Thread(target=self._loop, name="pusht_sim_step", daemon=True)
        self._thread.start()

    @property
    def robot(self) -> PushTRobot:
        """The simulated robot, for in-process readers (`vqbet-demo`, tests); read it between steps only."""
        return self._robot

    # --- parameters ---
    def _read_parameters(self) -> dict:
        self._params.refuse_renamed(SIM_RENAMED)
        p = self._params.values(PARAMETERS)
        for name in PARAMETERS:
            if name.endswith("_topic"):
                self._params.topic(name)
        for low_dim in LOW_DIM_SIZES:
            self._params.topic("low_dim_topic_prefix", suffix=low_dim)
        self._initial_state()
        return p

    def _check_parameters(self, params: list[Parameter]) -> SetParametersResult:
        for param in params:
            if param.name in PARAMETERS and param.name not in DYNAMIC_PARAMETERS:
                return SetParametersResult(successful=False, reason=(
                    f"`{param.name}` is read at start-up only; restart the node to change it"))
            if param.name == "initial_state":
                try:
                    self._initial_state(param.value)  # its length and finiteness too
                except ConfigError as err:
                    return SetParametersResult(successful=False, reason=str(err))
        reason = self._params.refusal(params)
        return SetParametersResult(successful=reason is None, reason=reason or "")

    def _initial_state(self, *proposed) -> list[float]:
        """The checked `initial_state` (or the value `proposed` for it): none, or 5 finite values."""
        state = self._params.value("initial_state", *proposed)
        if len(state) not in (0, 5) or not all(math.isfinite(v) for v in state):
            raise ConfigError(f"parameter `initial_state` is {state}; expected 5 values [agent x, y, "
                              "block x, y, angle], all finite, or none to start from the seed")
        return state

    # --- episodes ---
    def _start_episode_locked(self, count: bool = True) -> str:
        """Reset the robot for the next episode (caller holds the lock); returns what it started from."""
        now_s = self._clock_s if self._fast else self.get_clock().now().nanoseconds * 1e-9
        started = self._sim.start_episode(now_s, self._params.value("seed"), self._initial_state(), count)
        self._wall_t0 = time.monotonic()
        for observer in self.step_observers:
            observer(self._robot)
        return started

    def _on_reset(self, request, response):
        with self._cond:
            response.message = self._start_episode_locked()
            self._running = True
            snapshot = self._sim.snapshot()
            self._cond.notify_all()
        self._publish(snapshot)
        response.success = True
        self.get_logger().info(f"reset: {response.message}")
        return response

    # --- commands ---
    def _on_trajectory(self, msg: JointTrajectory) -> None:
        with self._cond:
            if not msg.points:  # an empty trajectory means "stop and hold" (joint_trajectory_controller)
                self._sim.hold()
                return
            try:
                start_s, offsets_s, positions = joint_trajectory_to_points(msg, JOINT_NAMES)
                times = (self._sim.now_s if start_s is None else start_s) + offsets_s  # a zero stamp: "now"
                accepted = self._sim.put_chunk(times, positions)
            except ValueError as err:
                self.get_logger().error(f"`{self._p['trajectory_topic']}`: {err}", throttle_duration_sec=5.0)
                return
            if not accepted:
                self.get_logger().warning(
                    f"`{self._p['trajectory_topic']}`: chunk ends at {times[-1]:.3f} s, before now "
                    f"({self._sim.now_s:.3f} s); refused (stamp chunks with the observation time)",
                    throttle_duration_sec=5.0)
            else:
                self._command_arrived_locked()
            self._cond.notify_all()

    def _on_command(self, msg: Float64MultiArray) -> None:
        try:
            target, _ = float64_multiarray_to_array(msg, JOINT_NAMES)
            with self._cond:
                self._sim.put_target(target)
                self._command_arrived_locked()
                self._cond.notify_all()
        except ValueError as err:
            self.get_logger().error(f"`{self._p['command_topic']}`: {err}", throttle_duration_sec=5.0)

    def _command_arrived_locked(self) -> None:
        if self._released_wall is not None:
            self.command_delays_s.append(time.monotonic() - self._released_wall)
            self._released_wall = None

    # --- stepping ---
    def _loop(self) -> None:
        while not self._stop.is_set():
            snapshot = self._fast_wait_and_step() if self._fast else self._realtime_wait_and_step()
            if snapshot is not None:
                self._publish(snapshot)

    def _auto_reset(self) -> bool:
        return self._params.value("auto_reset")

    def _realtime_wait_and_step(self) -> SimSnapshot | None:
        """Sleep to the next absolute deadline t0 + (k+1) dt, then step (or, idle, publish the still robot)."""
        with self._cond:
            deadline = self._wall_t0 + (self._robot.step_index + 1) * self._dt_s
        if self._stop.wait(max(0.0, deadline - time.monotonic())):
            return None
        with self._cond:
            if self._running and self._robot.done and self._auto_reset():
                self._start_episode_locked()
                return self._sim.snapshot()
            if not self._running or self._robot.done or self._sim.awaiting_command:
                self._running = self._running and not self._robot.done
                # The robot stands still but its sensors stream on; restamp it as of now.
                self._sim.restamp(self.get_clock().now().nanoseconds * 1e-9)
                self._wall_t0 = time.monotonic() - self._robot.time_s
                return self._sim.snapshot()
            late_s = time.monotonic() - deadline
            if late_s > 2 * self._dt_s:  # re-anchor rather than racing to catch up
                self.get_logger().warning(f"sim step {late_s:.3f} s behind real time", throttle_duration_sec=5.0)
                self._wall_t0 += late_s
            return self._step_locked()

    def _fast_wait_and_step(self) -> SimSnapshot | None:
        """Lockstep: step once the next step's command is known, or after `lockstep_timeout_s`."""
        with self._cond:
            waited_from = time.monotonic()
            while not self._stop.is_set():
                if self._running and self._robot.done and self._auto_reset():
                    self._start_episode_locked()
                    return self._sim.snapshot()
                if not self._running or self._robot.done:
                    self._running = False
                    self._cond.wait(0.1)  # idle until ~/reset
                    # Time stands still, but late joiners still learn what time it is (as a paused simulator).
                    self._clock_pub.publish(Clock(clock=seconds_to_time(self._clock_s)))
                    waited_from = time.monotonic()
                    continue
                if self._sim.command_known():
                    return self._step_locked()
                remaining = waited_from + self._params.value("lockstep_timeout_s") - time.monotonic()
                if remaining <= 0 and self._sim.awaiting_command:  # time passes, the episode has not started
                    self._sim.wait_a_step()
                    return self._sim.snapshot()
                if remaining <= 0:
                    self.lockstep_timeouts += 1
                    return self._step_locked()
                self._cond.wait(remaining)
        return None

    def _step_locked(self) -> SimSnapshot:
        snapshot = self._sim.step()
        for observer in self.step_observers:
            observer(self._robot)
        return snapshot

    # --- output ---
    def _publish(self, snapshot: SimSnapshot) -> None:
        obs, stamp_s = snapshot.obs, snapshot.stamp_s
        stamp = seconds_to_time(stamp_s)
        status = replace(snapshot.status, stamp_sec=stamp.sec, stamp_nanosec=stamp.nanosec).to_values()
        frame_id = self._p["frame_id"]
        image = Image()
        image.header.stamp, image.header.frame_id = stamp, frame_id
        image.height, image.width = obs.image.shape[:2]
        image.encoding, image.is_bigendian, image.step = "rgb8", 0, obs.image.shape[1] * 3
        image.data = obs.image.tobytes()
        joints = JointState(name=list(JOINT_NAMES), position=obs.agent_xy.tolist())
        joints.header.stamp = stamp
        pose = PoseStamped()
        pose.header.stamp, pose.header.frame_id = stamp, frame_id
        pose.pose.position.x, pose.pose.position.y = float(obs.block_pose[0]), float(obs.block_pose[1])
        pose.pose.orientation.z = math.sin(obs.block_pose[2] / 2)
        pose.pose.orientation.w = math.cos(obs.block_pose[2] / 2)

        self._image_pub.publish(image)
        self._joint_pub.publish(joints)
        for name, pub in self._low_dim_pubs.items():
            pub.publish(Float64MultiArray(data=obs.low_dim(name).tolist()))
        self._pose_pub.publish(pose)
        if self._fast:
            # Observations first, then the clock: a use_sim_time subscriber whose timer fires at this
            # instant then already holds the observation stamped with it.
            time.sleep(self._p["obs_settle_s"])
            for gate in self.release_gates:
                gate(stamp_s)
            with self._cond:
                self._clock_s = max(self._clock_s, stamp_s + CLOCK_LEAD_S)
                clock = seconds_to_time(self._clock_s)
                # an ended episode waits for ~/reset, not for a command
                self._released_wall = None if snapshot.status.done else time.monotonic()
            self._clock_pub.publish(Clock(clock=clock))
        # Status last: whoever paces itself on it (teleop, the demo) acts once the step is released.
        status_msg = Float64MultiArray(data=status)
        status_msg.layout.dim = [MultiArrayDimension(label=",".join(STATUS_FIELDS), size=len(status), stride=1)]
        self._status_pub.publish(status_msg)

    def destroy_node(self):
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout=5.0)
        self._robot.close()
        return super().destroy_node()


def main(args=None) -> None:
    run_node(PushTSimNode, args)


if __name__ == "__main__":
    main()
