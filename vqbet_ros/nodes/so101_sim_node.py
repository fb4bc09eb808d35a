"""The simulated SO-101 as a ROS 2 robot driver: joint states, two cameras, block pose and status out; joint
trajectories and forward commands in; episodes reset by service. Real time, or lockstep with `/clock`.

Interface (topic names are parameters, all relative so a namespace or remap moves them):
- publishes `joint_states` (`sensor_msgs/JointState`, the six joints of `so101.scene.JOINT_NAMES` in
  radians, gripper included; position and velocity) every physics tick (150 Hz at the default 30 Hz x 5),
  `scene_camera/image_raw` and `wrist_camera/image_raw` (`sensor_msgs/Image`, rgb8) once per control period,
  `so101/block_pose` (`geometry_msgs/PoseStamped`, privileged: the block's true pose) and `so101/status`
  (`std_msgs/Float64MultiArray`, `STATUS_FIELDS`, the layout's dim label lists them) once per control
  period. Every message of one instant carries the same stamp; a frame is stamped with the state it shows.
- subscribes `arm_controller/joint_trajectory` (`trajectory_msgs/JointTrajectory`, executed as a
  joint_trajectory_controller does, `so101/trajectory.py`) and `forward_position_controller/commands`
  (`std_msgs/Float64MultiArray`, six positions in `JOINT_NAMES` order, held until the next command).
- service `~/reset` (`std_srvs/Trigger`): episode n (counting every started episode from 0) puts the block at
  the pose drawn from seed `seed + n`, the arm at its rest pose.

Time. `mode: realtime` ticks on absolute deadlines of the monotonic clock and stamps with ROS time; the
cameras render on their own thread, from a copy of the state taken at the control tick, so a slow frame
delays images (stamped with their state's time) but never the joint states; a frame still being rendered
when the next is due is skipped. `mode: fast` owns the clock: it publishes `rosgraph_msgs/Clock` and runs one
control period at a time: the ticks (joint states), then the frames, status and block pose, then `/clock`
advanced to their stamp; it runs the next period once its command is known (`lockstep`, as the PushT sim:
`each_step` a command arrived since the last period, `chunk` the trajectory covers the next period, `off`)
or after `lockstep_timeout_s` of wall time. With `chunk`, a commander that executes chunks open loop still
needs every period's observation for its history: given `lockstep_topic` (e.g. the policy node's per-tick
`~/commands`), the sim also waits for a message there each period, so it never runs ahead of the commander.

An episode ends after `episode_s`, or with `end_on_success` once the task succeeds; the arm then holds still
(in real time its sensors keep streaming) until `~/reset`, or the next episode starts with `auto_reset`.

Deviation: a plain (unmanaged) node, as `pusht_sim_node`: it stands in for a robot driver.
"""
from __future__ import annotations

import threading
import time
from typing import Callable

import numpy as np
from geometry_msgs.msg import PoseStamped
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Float64MultiArray, MultiArrayDimension
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory

from vqbet_ros.nodes.entry import SIM_RENAMED, run_node
from vqbet_ros.nodes.msg_convert import float64_multiarray_to_array, joint_trajectory_to_points
from vqbet_ros.nodes.parameters import NodeParameters
from vqbet_ros.nodes.sim_clock import CLOCK_LEAD_S
from vqbet_ros.nodes.trajectory import seconds_to_time
from vqbet_ros.so101.robot import CameraConfig, SO101Cameras, SO101Config, SO101Robot
from vqbet_ros.so101.scene import CAMERA_NAMES, JOINT_NAMES
from vqbet_ros.so101.trajectory import TIME_EPS_S, TrajectoryExecutor

STATUS_FIELDS = ("success", "lifted", "placed_pad", "time_s", "episode", "done", "stamp_sec", "stamp_nanosec")
LOCKSTEP_MODES = ("each_step", "chunk", "off")

# Sensors: RELIABLE, so both sensor-data (BEST_EFFORT) and RELIABLE subscribers match (docs/ros2.md §2).
SENSOR_QOS = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
# Joint states come 5 per control period: a deeper queue so a recorder between two spins loses none.
JOINT_QOS = QoSProfile(depth=20, reliability=ReliabilityPolicy.RELIABLE)
COMMAND_QOS = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
CLOCK_QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE)
# Fast mode's clock starts here, not at 0 (a zero stamp means "now").
FAST_CLOCK_START_S = 1.0

PARAMETERS = {  # name: (default, description)
    "mode": ("realtime", "`realtime` (wall clock) or `fast` (publishes /clock, lockstep with the commander)"),
    "seed": (0, "episode n puts the block at the pose drawn from seed + n"),
    "first_episode_at_start": (True, "start episode 0 at start-up; false: wait for ~/reset"),
    "auto_reset": (False, "start the next episode by itself when one ends"),
    "task": ("place", "`place` (block resting on either pad) or `lift` (block lifted by lift_height_m)"),
    "end_on_success": (True, "end the episode as soon as the task succeeds"),
    "episode_s": (20.0, "episode length in seconds of sim time"),
    "control_hz": (30.0, "camera, status and lockstep rate (Hz)"),
    "ticks_per_control": (5, "joint-state ticks per control period (5 at 30 Hz: joint states at 150 Hz)"),
    "cameras": (list(CAMERA_NAMES), "cameras to render: scene, wrist; empty: none"),
    "image_width": (128, "camera image width in pixels (both cameras)"),
    "image_height": (96, "camera image height in pixels (both cameras)"),
    "lockstep": ("each_step", "fast mode: next period when `each_step` a command arrived, when the `chunk` "
                              "covers it, or `off`"),
    "lockstep_timeout_s": (2.0, "fast mode: wall seconds to wait for a command before holding the last one"),
    "lockstep_topic": ("", "fast mode, `chunk`: also wait each period for a message here (Float64MultiArray, the "
                           "commander's per-tick output, e.g. /policy_node/commands); empty: do not"),
    "obs_settle_s": (0.005, "fast mode: wall seconds between publishing observations and advancing /clock"),
    "frame_id": ("world", "frame of the block pose (the arm's base is at its origin)"),
    "joint_states_topic": ("joint_states", "joint positions and velocities"),
    "image_topic_format": ("{camera}_camera/image_raw", "camera topics; {camera} is the camera's name"),
    "block_pose_topic": ("so101/block_pose", "privileged block pose (geometry_msgs/PoseStamped)"),
    "status_topic": ("so101/status", "Float64MultiArray " + ", ".join(STATUS_FIELDS)),
    "trajectory_topic": ("arm_controller/joint_trajectory", "JointTrajectory input (joint_trajectory_controller)"),
    "command_topic": ("forward_position_controller/commands", "Float64MultiArray input, six positions"),
}


class SO101SimNode(Node):
    """SO-101 robot node; see the module docstring for its interface."""

    def __init__(self, **kwargs):
        super().__init__("so101_sim", **kwargs)
        params = NodeParameters(self)
        params.refuse_renamed(SIM_RENAMED)
        params.declare_all(PARAMETERS)
        p = params.values(PARAMETERS)
        for name in ("joint_states_topic", "block_pose_topic", "status_topic", "trajectory_topic",
                     "command_topic"):
            params.topic(name)
        if p["mode"] not in ("realtime", "fast"):
            raise ValueError(f"parameter `mode` is {p['mode']!r}; expected 'realtime' or 'fast'")
        if p["lockstep"] not in LOCKSTEP_MODES:
            raise ValueError(f"parameter `lockstep` is {p['lockstep']!r}; expected one of {list(LOCKSTEP_MODES)}")
        camera = CameraConfig(width=p["image_width"], height=p["image_height"])
        self.config = SO101Config(control_hz=p["control_hz"], ticks_per_control=p["ticks_per_control"],
                                  task=p["task"], episode_s=p["episode_s"],
                                  cameras={name: camera for name in p["cameras"]})
        self._p = p
        self._fast = p["mode"] == "fast"
        self._robot = SO101Robot(self.config)
        self._executor = TrajectoryExecutor(self._robot.joint_positions)
        self._lock = threading.Condition()  # guards robot, executor and episode state; wakes the fast loop
        self._stop = threading.Event()
        self._episodes_started = 0
        self._episode = 0
        self._running = False
        self._fresh_command = False
        self._ticked = False  # a message on `lockstep_topic` since the last period
        self._episode_start_ros_s = 0.0
        self._clock_s = FAST_CLOCK_START_S
        self._wall_t0 = time.monotonic()
        self.lockstep_timeouts = 0
        # In-process observers of every physics tick (a demo or a benchmark in this process, as pusht_sim_node's
        # step_observers): observer(stamp_s, commanded, positions, velocities), called under the sim's lock.
        self.tick_observers: list[Callable[[float, np.ndarray, np.ndarray, np.ndarray], None]] = []
        # Fast mode, in process: gate(stamp_s) returns once a subscriber has the period's observations, before
        # /clock advances to them (obs_settle_s is a guess; a loaded machine can take longer).
        self.release_gates: list[Callable[[float], None]] = []
        self._idle_ticks = 0  # ticks published while the arm stands still (real time)
        self._announce = False  # fast mode: publish the new episode's initial state before its first period

        self._joint_pub = self.create_publisher(JointState, p["joint_states_topic"], JOINT_QOS)
        self._image_pubs = {name: self.create_publisher(Image, p["image_topic_format"].format(camera=name),
                                                        SENSOR_QOS) for name in self.config.cameras}
        self._pose_pub = self.create_publisher(PoseStamped, p["block_pose_topic"], SENSOR_QOS)
        self._status_pub = self.create_publisher(Float64MultiArray, p["status_topic"], COMMAND_QOS)
        self._clock_pub = self.create_publisher(Clock, "/clock", CLOCK_QOS) if self._fast else None
        self.create_subscription(JointTrajectory, p["trajectory_topic"], self._on_trajectory, COMMAND_QOS)
        self.create_subscription(Float64MultiArray, p["command_topic"], self._on_command, COMMAND_QOS)
        self.create_service(Trigger, "~/reset", self._on_reset)
        if p["lockstep_topic"]:
            self.create_subscription(Float64MultiArray, p["lockstep_topic"], self._on_tick, COMMAND_QOS)

        # Frames: the step thread leaves (state, stamp) here, the render thread takes the newest.
        self._frame_request: tuple[np.ndarray, float] | None = None
        self._frame_cond = threading.Condition()
        self._frames_pending = 0
        with self._lock:
            if p["first_episode_at_start"]:
                self._start_episode_locked()
        self._render_thread = threading.Thread(target=self._render_loop, name="so101_render", daemon=True)
        self._render_thread.start()
        self._thread = threading.Thread(target=self._loop, name="so101_step", daemon=True)
        self._thread.start()

    # --- episodes ---
    def _now_s(self) -> float:
        """ROS time of the robot's current state."""
        return self._episode_start_ros_s + self._robot.time_s

    def _start_episode_locked(self) -> str:
        seed = int(self.get_parameter("seed").value) + self._episodes_started
        self._robot.reset(seed=seed)
        self._episode = self._episodes_started
        self._episodes_started += 1
        self._executor.hold(self._robot.joint_positions)
        self._fresh_command = self._ticked = False
        self._running = True
        if self._fast:  # one control period after the last released instant, so stamps never repeat
            self._episode_start_ros_s = self._clock_s + 1.0 / self.config.control_hz
        else:
            self._episode_start_ros_s = self.get_clock().now().nanoseconds * 1e-9
        self._wall_t0 = time.monotonic()
        self._announce = True
        return f"episode {self._episode} from seed {seed}"

    def _on_reset(self, request, response):
        with self._lock:
            response.message = self._start_episode_locked()
            self._lock.notify_all()
        response.success = True
        self.get_logger().info(f"reset: {response.message}")
        return response

    @property
    def _done(self) -> bool:
        return self._robot.done or (self._p["end_on_success"] and self._robot.success)

    # --- commands ---
    def _on_trajectory(self, msg: JointTrajectory) -> None:
        with self._lock:
            try:
                if not msg.points:  # an empty trajectory: stop and hold (joint_trajectory_controller)
                    self._executor.stop(self._now_s())
                else:
                    start_s, offsets, positions = joint_trajectory_to_points(msg, JOINT_NAMES)
                    self._executor.set_trajectory(start_s, offsets, positions, now_s=self._now_s())
            except ValueError as err:
                self.get_logger().error(f"`{self._p['trajectory_topic']}`: {err}", throttle_duration_sec=5.0)
                return
            self._fresh_command = True
            self._lock.notify_all()

    def _on_command(self, msg: Float64MultiArray) -> None:
        try:
            target, _ = float64_multiarray_to_array(msg, JOINT_NAMES)
            with self._lock:
                self._executor.hold(target)
                self._fresh_command = True
                self._lock.notify_all()
        except ValueError as err:
            self.get_logger().error(f"`{self._p['command_topic']}`: {err}", throttle_duration_sec=5.0)

    def _on_tick(self, msg: Float64MultiArray) -> None:
        with self._lock:
            self._ticked = True
            self._lock.notify_all()

    # --- stepping ---
    def _loop(self) -> None:
        while not self._stop.is_set():
            if self._fast:
                self._fast_period()
            else:
                self._realtime_tick()

    def _auto_reset_locked(self) -> bool:
        if self._running and self._done and self.get_parameter("auto_reset").value:
            self._start_episode_locked()
            return True
        return False

    def _realtime_tick(self) -> None:
        """Sleep to the next absolute deadline t0 + (k+1) tick, then tick (or, idle, restamp the still arm)."""
        tick_s = self.config.tick_s
        with self._lock:
            deadline = self._wall_t0 + (self._robot.tick_index + 1) * tick_s
        if self._stop.wait(max(0.0, deadline - time.monotonic())):
            return
        with self._lock:
            self._auto_reset_locked()
            if not self._running or self._done:
                self._running = self._running and not self._done
                # The arm stands still but its sensors stream on: its state is restamped as of now, and the
                # next deadline is one tick from now.
                self._episode_start_ros_s = self.get_clock().now().nanoseconds * 1e-9 - self._robot.time_s
                self._wall_t0 = time.monotonic() - self._robot.time_s
                self._idle_ticks += 1
                snapshot = self._snapshot_locked(self._idle_ticks % self.config.ticks_per_control == 0)
            else:
                late_s = time.monotonic() - deadline
                if late_s > 5 * tick_s:  # re-anchor rather than racing to catch up
                    self.get_logger().warning(f"sim tick {late_s:.3f} s behind real time", throttle_duration_sec=5.0)
                    self._wall_t0 += late_s
                snapshot = self._tick_locked()
        self._publish(snapshot)

    def _fast_period(self) -> None:
        """Lockstep: run one control period once its command is known (or after the timeout), publish it."""
        with self._lock:
            if self._announce:  # the initial state, so the commander sees the episode before it moves
                self._announce = False
                snapshots = [self._snapshot_locked(True)]
            else:
                snapshots = self._fast_wait_and_run_locked()
        if snapshots:
            self._release(snapshots)

    def _fast_wait_and_run_locked(self) -> list[dict]:
        """Wait until the next period's command is known (or the timeout), then run the period's ticks."""
        waited_from = time.monotonic()
        while not self._stop.is_set():
            if self._announce or self._auto_reset_locked():
                return []  # a new episode (reset meanwhile) is announced first
            if not self._running or self._done:
                self._running = False
                self._lock.wait(0.1)  # idle until ~/reset; late joiners still learn what time it is
                self._clock_pub.publish(Clock(clock=seconds_to_time(self._clock_s)))
                waited_from = time.monotonic()
                continue
            if self._command_known_locked():
                break
            remaining = waited_from + float(self.get_parameter("lockstep_timeout_s").value) - time.monotonic()
            if remaining <= 0:
                self.lockstep_timeouts += 1
                break
            self._lock.wait(remaining)
        else:
            return []
        self._fresh_command = self._ticked = False
        return [self._tick_locked() for _ in range(self.config.ticks_per_control)]

    def _release(self, snapshots: list[dict]) -> None:
        """Fast mode: publish a period's observations, wait for its frames, then advance /clock to them."""
        for snapshot in snapshots:
            self._publish(snapshot)
        self._wait_frames_published()
        time.sleep(self._p["obs_settle_s"])
        for gate in self.release_gates:
            gate(snapshots[-1]["stamp_s"])
        with self._lock:
            self._clock_s = max(self._clock_s, snapshots[-1]["stamp_s"] + CLOCK_LEAD_S)
            clock = seconds_to_time(self._clock_s)
        self._clock_pub.publish(Clock(clock=clock))
        self._status_pub.publish(snapshots[-1]["status"])

    def _command_known_locked(self) -> bool:
        lockstep = self._p["lockstep"]
        if lockstep == "each_step":
            return self._fresh_command
        if lockstep == "chunk":
            period_end_s = self._now_s() + 1.0 / self.config.control_hz
            covered = self._fresh_command or self._executor.end_s >= period_end_s - TIME_EPS_S
            return covered and (self._ticked or not self._p["lockstep_topic"])
        return True

    def _tick_locked(self) -> dict:
        target = self._executor.sample(self._now_s() + self.config.tick_s)  # where to be at the tick's end
        self._robot.tick(target)
        snapshot = self._snapshot_locked(self._robot.tick_index % self.config.ticks_per_control == 0)
        for observer in self.tick_observers:
            observer(snapshot["stamp_s"], target, snapshot["positions"], snapshot["velocities"])
        return snapshot

    def _snapshot_locked(self, control: bool) -> dict:
        """What to publish for the current state, taken under the lock so a reset cannot mix two states."""
        stamp_s = self._now_s()
        snapshot = {"stamp_s": stamp_s, "positions": self._robot.joint_positions,
                    "velocities": self._robot.joint_velocities}
        if control:
            robot = self._robot
            stamp = seconds_to_time(stamp_s)
            status = [float(robot.success), float(robot.lifted),
                      -1.0 if robot.placed_pad is None else float(robot.placed_pad), robot.time_s,
                      float(self._episode), float(self._done), float(stamp.sec), float(stamp.nanosec)]
            msg = Float64MultiArray(data=status)
            msg.layout.dim = [MultiArrayDimension(label=",".join(STATUS_FIELDS), size=len(status), stride=1)]
            snapshot.update(qpos=robot.qpos, block_pose=robot.block_pose, status=msg)
        return snapshot

    # --- output ---
    def _publish(self, snapshot: dict) -> None:
        stamp = seconds_to_time(snapshot["stamp_s"])
        joints = JointState(name=list(JOINT_NAMES), position=snapshot["positions"].tolist(),
                            velocity=snapshot["velocities"].tolist())
        joints.header.stamp = stamp
        self._joint_pub.publish(joints)
        if "qpos" not in snapshot:
            return
        with self._frame_cond:
            if self._image_pubs:
                self._frame_request = (snapshot["qpos"], snapshot["stamp_s"])
                self._frames_pending += 1
                self._frame_cond.notify_all()
        pose = PoseStamped()
        pose.header.stamp, pose.header.frame_id = stamp, self._p["frame_id"]
        x, y, z, qw, qx, qy, qz = snapshot["block_pose"].tolist()
        pose.pose.position.x, pose.pose.position.y, pose.pose.position.z = x, y, z
        o = pose.pose.orientation
        o.w, o.x, o.y, o.z = qw, qx, qy, qz
        self._pose_pub.publish(pose)
        if not self._fast:  # fast mode publishes the status after /clock: commanders pace on it
            self._status_pub.publish(snapshot["status"])

    def _render_loop(self) -> None:
        if not self._image_pubs:
            return
        try:
            cameras = SO101Cameras(self.config.cameras)  # its OpenGL contexts belong to this thread
        except Exception as err:  # no usable OpenGL: the arm runs on without cameras
            self.get_logger().error(
                f"cannot render the cameras ({type(err).__name__}: {err}); no images will be published. "
                "Install Mesa's EGL (apt-get install libegl1 libgl1-mesa-dri), or set MUJOCO_GL=osmesa "
                "with libosmesa6, or set the parameter `cameras` to [] to run without cameras")
            with self._frame_cond:
                self._image_pubs = {}
                self._frames_pending = 0
                self._frame_cond.notify_all()
            return
        try:
            while not self._stop.is_set():
                with self._frame_cond:
                    while self._frame_request is None and not self._stop.is_set():
                        self._frame_cond.wait(0.1)
                    if self._stop.is_set():
                        return
                    (qpos, stamp_s), self._frame_request = self._frame_request, None
                    skipped = self._frames_pending - 1
                images = cameras.render(qpos)
                stamp = seconds_to_time(stamp_s)
                for name, image in images.items():
                    msg = Image(height=image.shape[0], width=image.shape[1], encoding="rgb8", is_bigendian=0,
                                step=image.shape[1] * 3, data=image.tobytes())
                    msg.header.stamp, msg.header.frame_id = stamp, f"{name}_camera"
                    self._image_pubs[name].publish(msg)
                with self._frame_cond:
                    self._frames_pending -= skipped + 1
                    self._frame_cond.notify_all()
                if skipped:
                    self.get_logger().warning(f"rendering is slower than {self.config.control_hz} Hz: skipped "
                                              f"{skipped} frame(s)", throttle_duration_sec=5.0)
        finally:
            cameras.close()

    def _wait_frames_published(self) -> None:
        with self._frame_cond:
            while self._frames_pending > 0 and not self._stop.is_set():
                self._frame_cond.wait(0.1)

    def destroy_node(self):
        self._stop.set()
        with self._lock:
            self._lock.notify_all()
        with self._frame_cond:
            self._frame_cond.notify_all()
        for thread in (self._thread, self._render_thread):
            if thread.is_alive() and threading.current_thread() is not thread:
                thread.join(timeout=5.0)
        return super().destroy_node()


def main(args=None) -> None:
    run_node(SO101SimNode, args)


if __name__ == "__main__":
    main()
