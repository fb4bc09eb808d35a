"""VQ-BeT policy as a ROS 2 lifecycle node: cameras + joint states (+ low-dim topics) in, action chunks out.

    ros2 launch vqbet_ros policy.launch.py checkpoint:=/path/to/ckpt
    ros2 run vqbet_ros policy_node --ros-args -p checkpoint:=/path/to/ckpt -p enable_control:=true

Lifecycle: configure loads the checkpoint on `device` and warms it up, creates subscriptions, publishers and
services; activate starts the control loop (a worker thread ticking at the checkpoint's fps); deactivate stops
it and tells the controller to hold; cleanup undoes configure.

Topics (names are parameters, wired as the recorder's (`nodes/inputs.py`), and remappable; joint order, image
size and fps come from the checkpoint):
- in: one camera topic per checkpoint camera (`cameras.<name>.topic`, `sensor_msgs/Image` or, with
  `cameras.<name>.compressed: true`, `sensor_msgs/CompressedImage`; sensor-data QoS), `joint_states_topic`
  (`sensor_msgs/JointState`, matched by joint name), one topic per checkpoint low-dim input
  (`low_dim.<name>.topic`, `std_msgs/Float64MultiArray` or `geometry_msgs/PoseStamped`).
- out: `trajectory_topic` (`trajectory_msgs/JointTrajectory`, whole chunk, only while control is enabled),
  `preview_topic` (same chunks, always: the dry run), `commands_topic` (`std_msgs/Float64MultiArray`, the
  current target at the control rate, when `publish_commands`), `/diagnostics`.
- services: `~/enable` (`std_srvs/SetBool`), `~/reset` (`std_srvs/Trigger`, new episode: history restarts).

Stamping: `header.stamp` = control tick at which the newest observation was sampled, point k due at
`stamp + (k + 1)/fps` (see `nodes/trajectory.py`). Callbacks only convert a message and hand the array to
the runtime; inference runs on the worker thread (`runtime/engine.py`).

Output atomicity: the worker publishes a tick's result and the services publish their hold under one lock
(`_output_lock`). A disable, a reset or a deactivate publishes its hold and changes the state inside that
lock, and a result computed before a reset or an enable (an older `generation`) is dropped, so once such a
hold is out, nothing computed before it follows.
"""
from __future__ import annotations

import threading

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.lifecycle import LifecycleNode, TransitionCallbackReturn
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from std_msgs.msg import Float64MultiArray
from std_srvs.srv import SetBool, Trigger
from trajectory_msgs.msg import JointTrajectory

from vqbet_ros.config_io import ConfigError, from_dict
from vqbet_ros.nodes.entry import AUTOSTART_PARAMETERS, configure_and_activate_when_spun, run_node
from vqbet_ros.nodes.inputs import (
    JOINT_STATES_PARAMETERS,
    Input,
    camera_inputs,
    joint_states_input,
    low_dim_inputs,
)
from vqbet_ros.nodes.msg_convert import Stamps
from vqbet_ros.nodes.parameters import NodeParameters, config_parameters
from vqbet_ros.nodes.trajectory import chunk_to_joint_trajectory, hold_trajectory
from vqbet_ros.runtime.config import RuntimeConfig
from vqbet_ros.runtime.engine import JOINTS, PolicyRuntime, StepResult, camera_stream, low_dim_stream
from vqbet_ros.runtime.worker import PolicyWorker

SENSOR_QOS = qos_profile_sensor_data  # cameras and joint states: BEST_EFFORT hears RELIABLE publishers too
COMMAND_QOS = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)  # what controllers subscribe with
DIAGNOSTICS_QOS = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)

# RuntimeConfig fields set by parameters of the same name (defaults and descriptions live in the dataclass).
RUNTIME_PARAMETERS = config_parameters(RuntimeConfig)
NODE_PARAMETERS = {
    "checkpoint": ("", "checkpoint directory (config.yaml, model.safetensors, stats.safetensors)"),
    **AUTOSTART_PARAMETERS,
    **JOINT_STATES_PARAMETERS,
    "joint_name_map": (Parameter.Type.STRING_ARRAY,
                       "entries 'checkpoint_name:robot_name' when the robot's joints are named differently"),
    "trajectory_topic": ("~/joint_trajectory", "JointTrajectory chunks (e.g. /arm_controller/joint_trajectory)"),
    "preview_topic": ("~/preview", "JointTrajectory chunks, published in dry run and live"),
    "publish_commands": (False, "also publish Float64MultiArray targets at the control rate (forward controllers)"),
    "commands_topic": ("~/commands", "Float64MultiArray targets (e.g. /forward_position_controller/commands)"),
    "diagnostics_period_s": (1.0, "period of /diagnostics (s)"),
}


class NodeClock:
    """The runtime clock adapter over the node clock (follows `/clock` under use_sim_time)."""

    def __init__(self, node):
        self._clock = node.get_clock()
        self._sim = node.get_parameter("use_sim_time").value

    def now_s(self) -> float:
        return self._clock.now().nanoseconds * 1e-9

    def sleep_until(self, t_s: float, stop: threading.Event) -> bool:
        last = self.now_s()
        while not stop.is_set():
            now = self.now_s()
            remaining = t_s - now
            if remaining <= 0 or now < last:  # due, or time went backwards (the worker re-anchors)
                return True
            last = now
            # Sim time can jump ahead of wall time: poll it; system time: sleep the remaining wall time.
            stop.wait(min(remaining, 0.001) if self._sim else remaining)
        return False


class PolicyNode(LifecycleNode):
    """Lifecycle node around `PolicyRuntime`; see the module docstring."""

    def __init__(self, **kwargs):
        super().__init__("policy_node", **kwargs)
        self.params = NodeParameters(self)
        self.params.declare_all({**RUNTIME_PARAMETERS, **NODE_PARAMETERS})
        self.runtime: PolicyRuntime | None = None
        self.worker: PolicyWorker | None = None
        self._labels: dict[str, str] = {}  # stream -> topic, for messages a user reads
        self._robot_names: dict[str, str] = {}
        self._stamps = Stamps(self._now_s)  # the recorder's stamping rules, so training and deployment agree
        self._input_subs = []
        self._owned_services = []
        self._trajectory_pub = None
        self._preview_pub = None
        self._commands_pub = None
        self._diagnostics_pub = None
        self._diagnostics_timer = None
        self._last_status = "inactive"
        self._output_lock = threading.Lock()  # see "Output atomicity" in the module docstring
        self._outputs_open = False  # the worker's results may be published (active, not stopping)
        if self.params.value("autostart"):
            configure_and_activate_when_spun(self)

    # ---- lifecycle -------------------------------------------------------------------------------------
    def on_configure(self, state) -> TransitionCallbackReturn:
        """Load + warm up the checkpoint, create entities. FAILURE (with one error line) -> unconfigured."""
        params = self.params
        try:
            config = from_dict(RuntimeConfig, params.values(RUNTIME_PARAMETERS))
            checkpoint = params.value("checkpoint")
            if not checkpoint:
                raise ConfigError("parameter `checkpoint` is empty; pass checkpoint:=/path/to/checkpoint_dir")
            topics = {name: params.topic(name) for name in ("trajectory_topic", "preview_topic", "commands_topic")}
            diagnostics_period_s = params.positive_seconds("diagnostics_period_s")
            runtime = PolicyRuntime.from_checkpoint(checkpoint, config)
            self._robot_names = self._joint_name_map(runtime)
            runtime.warmup()
            self.runtime = runtime
            self._create_inputs()
            self._trajectory_pub = self.create_lifecycle_publisher(
                JointTrajectory, topics["trajectory_topic"], COMMAND_QOS)
            self._preview_pub = self.create_lifecycle_publisher(JointTrajectory, topics["preview_topic"], COMMAND_QOS)
            if params.value("publish_commands"):
                self._commands_pub = self.create_lifecycle_publisher(
                    Float64MultiArray, topics["commands_topic"], COMMAND_QOS)
            self._diagnostics_pub = self.create_publisher(DiagnosticArray, "/diagnostics", DIAGNOSTICS_QOS)
            self._diagnostics_timer = self.create_timer(diagnostics_period_s, self._publish_diagnostics)
            self._owned_services = [
                self.create_service(SetBool, "~/enable", self._on_enable),
                self.create_service(Trigger, "~/reset", self._on_reset),
            ]
        except Exception as err:  # noqa: BLE001 - configure is a boundary: one line, FAILURE, nothing left
            user_error = isinstance(err, (ValueError, OSError, KeyError))  # incl. ConfigError, CheckpointError
            self.get_logger().error(f"configure failed: {err}" if user_error
                                    else f"configure failed ({type(err).__name__}): {err}")
            self._destroy_entities()
            return TransitionCallbackReturn.FAILURE
        spec = runtime.spec
        self.get_logger().info(
            f"configured: {checkpoint} on {runtime.device}, {spec.fps:g} Hz, cameras {list(spec.cameras)}, "
            f"joints {spec.joint_names}, low-dim {list(spec.low_dim)}, execution {config.execution}, "
            f"inference {runtime.inference.description} ({runtime.inference.state}), "
            f"control {'enabled' if runtime.enabled else 'DISABLED (dry run: ' + topics['preview_topic'] + ')'}")
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state) -> TransitionCallbackReturn:
        """Start the control loop; lifecycle publishers go live."""
        result = super().on_activate(state)
        self.runtime.request_reset()
        self.get_logger().info(f"active: control loop at {self.runtime.spec.fps:g} Hz on inputs "
                               f"{', '.join(f'{s} ({t})' for s, t in sorted(self._labels.items()))}")
        self._outputs_open = True
        self.worker = PolicyWorker(self.runtime, NodeClock(self), self._publish_result)
        self.worker.start()
        return result

    def on_deactivate(self, state) -> TransitionCallbackReturn:
        """Stop the loop; the controller is told to hold before the publishers go quiet."""
        self._stop_worker(hold=True)
        self.get_logger().info("deactivated: control loop stopped")
        return super().on_deactivate(state)

    def on_cleanup(self, state) -> TransitionCallbackReturn:
        self._destroy_entities()
        self.get_logger().info("cleaned up: checkpoint unloaded")
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state) -> TransitionCallbackReturn:
        self._stop_worker(hold=True)
        self._destroy_entities()
        self.get_logger().info("shut down")
        return TransitionCallbackReturn.SUCCESS

    def destroy_node(self):
        self._stop_worker(hold=False)  # the worker publishes: stop it before the publishers go
        super().destroy_node()

    def _stop_worker(self, hold: bool) -> None:
        if self.worker is not None:
            with self._output_lock:  # the hold is the last output, even if the worker is mid-tick
                self._outputs_open = False
                if hold:
                    self._hold()
            self.worker.stop()
            self.worker = None
        self._last_status = "inactive"

    def _destroy_entities(self) -> None:
        for sub in self._input_subs:
            self.destroy_subscription(sub)
        for srv in self._owned_services:
            self.destroy_service(srv)
        for pub in (self._trajectory_pub, self._preview_pub, self._commands_pub, self._diagnostics_pub):
            if pub is not None:
                self.destroy_publisher(pub)
        if self._diagnostics_timer is not None:
            self.destroy_timer(self._diagnostics_timer)
        self._input_subs, self._owned_services = [], []
        self._trajectory_pub = self._preview_pub = self._commands_pub = self._diagnostics_pub = None
        self._diagnostics_timer = None
        self.runtime = None

    # ---- configuration helpers -------------------------------------------------------------------------
    def _joint_name_map(self, runtime: PolicyRuntime) -> dict[str, str]:
        """checkpoint joint name -> robot joint name, from `joint_name_map` entries 'ckpt:robot'."""
        known = set(runtime.spec.joint_names) | set(runtime.spec.action_names)
        mapping = {}
        for entry in self.params.value("joint_name_map"):
            ckpt, sep, robot = entry.partition(":")
            if not sep or not ckpt or not robot:
                raise ConfigError(f"`joint_name_map` entry {entry!r}: expected 'checkpoint_name:robot_name'")
            if ckpt not in known:
                raise ConfigError(f"`joint_name_map` entry {entry!r}: the checkpoint has no joint `{ckpt}`; "
                                  f"its joints are {sorted(known)}")
            if ckpt in mapping:
                raise ConfigError(f"`joint_name_map` maps `{ckpt}` twice ({ckpt}:{mapping[ckpt]} and {entry}); "
                                  "keep one entry per checkpoint joint")
            mapping[ckpt] = robot
        names = {name: mapping.get(name, name) for name in known}
        taken: dict[str, str] = {}
        for ckpt, robot in sorted(names.items()):
            if robot in taken:
                raise ConfigError(f"`joint_name_map`: checkpoint joints `{taken[robot]}` and `{ckpt}` both read "
                                  f"robot joint `{robot}`; map each to its own robot joint")
            taken[robot] = ckpt
        return names

    def _create_inputs(self) -> None:
        """Subscriptions in the order cameras, joint states, low-dim inputs: with one executor thread a joint
        state is handled before a header-less message that waits beside it, as `Stamps` needs."""
        runtime, params = self.runtime, self.params
        self._stamps.reset()
        spec = runtime.spec
        for camera in camera_inputs(params, list(spec.cameras)):
            self._subscribe(camera_stream(camera.name), camera, runtime.put_image)
        if runtime.joint_input_names:
            joints = joint_states_input(params, [self._robot_names[n] for n in runtime.joint_input_names])
            self._subscribe(JOINTS, joints, lambda name, values, stamp: runtime.put_joint_state(values, stamp))
        for low_dim in low_dim_inputs(params, list(spec.low_dim), list(spec.low_dim.values())):
            self._subscribe(low_dim_stream(low_dim.name), low_dim, runtime.put_low_dim)

    # ---- callbacks: convert, hand to the runtime, return -----------------------------------------------
    def _now_s(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _subscribe(self, stream: str, source: Input, put) -> None:
        """Subscribe `source`; each message goes to `put(name, values, stamp_s)`, or a bad one is reported."""
        runtime, stamp = self.runtime, source.stamp(self._stamps)
        self._labels[stream] = source.topic

        def callback(msg) -> None:
            try:
                values, stamp_s = source.convert(msg)
            except ValueError as err:
                runtime.report_bad_input(stream, str(err))
                return
            put(source.name, values, stamp(stamp_s))
        self._input_subs.append(self.create_subscription(source.msg_type, source.topic, callback, SENSOR_QOS))

    def _on_enable(self, request, response):
        with self._output_lock:  # no result of the worker lands between the hold and the state change
            if self.runtime.enabled and not request.data:
                self._hold()  # while still enabled: the controller stops instead of finishing the last chunk
            self.runtime.set_enabled(request.data)
        response.success = True
        response.message = "control enabled" if request.data else "control disabled (dry run: preview only)"
        self.get_logger().info(response.message)
        return response

    def _on_reset(self, request, response):
        with self._output_lock:  # a chunk of the old episode is never published after this hold
            self.runtime.request_reset()
            self._hold()
        response.success = True
        response.message = "history and plan reset; the next frames start a new episode"
        return response

    # ---- output (worker thread) ------------------------------------------------------------------------
    def _out_names(self) -> list[str]:
        return [self._robot_names.get(n, n) for n in self.runtime.spec.action_names]

    def _hold(self) -> None:
        """Tell the controller to hold (while control is enabled). The caller holds `_output_lock`."""
        runtime = self.runtime
        if runtime is not None and runtime.enabled and runtime.config.hold_on_fault and self._trajectory_pub:
            self._trajectory_pub.publish(hold_trajectory(self._out_names()))

    def _publish_result(self, result: StepResult) -> None:
        with self._output_lock:
            if self._outputs_open and result.generation == self.runtime.generation:  # else: from before a hold
                self._publish_result_locked(result)

    def _publish_result_locked(self, result: StepResult) -> None:
        enabled = self.runtime.enabled
        if result.chunk is not None:
            msg = chunk_to_joint_trajectory(result.chunk, self._out_names())
            self._preview_pub.publish(msg)
            if enabled:
                self._trajectory_pub.publish(msg)
        if result.command is not None and enabled and self._commands_pub is not None:
            self._commands_pub.publish(Float64MultiArray(data=[float(v) for v in result.command]))
        if result.status != "running" and self._last_status == "running":
            self.get_logger().warning(f"commands stopped ({result.status}): {self._describe(result.problems)}")
            self._hold()
        elif result.status == "running" and self._last_status != "running":
            self.get_logger().info("all inputs good: commands running" if self.runtime.enabled else
                                   "all inputs good: chunks on the preview topic (dry run; call ~/enable)")
        elif result.status == "waiting" and self._last_status == "inactive":
            self.get_logger().info(f"waiting for {self._describe(result.problems)}")
        self._last_status = result.status

    def _describe(self, problems: dict[str, str]) -> str:
        return "; ".join(f"{s} ({self._labels.get(s, '-')}): {r}" for s, r in sorted(problems.items()))

    # ---- diagnostics -----------------------------------------------------------------------------------
    def _publish_diagnostics(self) -> None:
        if self.runtime is None or self._diagnostics_pub is None:
            return
        self._diagnostics_pub.publish(self.diagnostics_message())

    def diagnostics_message(self) -> DiagnosticArray:
        runtime, worker = self.runtime, self.worker
        now_s = self._now_s()
        status = DiagnosticStatus(name=f"{self.get_name()}: policy", hardware_id=str(self.params.value("checkpoint")))
        values = {}
        result = worker.last_result if worker is not None else None
        if worker is None:
            state, level, message = "inactive", DiagnosticStatus.WARN, "inactive (configure/activate to run)"
        elif worker.error is not None:
            state, level, message = "error", DiagnosticStatus.ERROR, f"worker stopped: {worker.error!r}"
        elif result is None:
            state, level, message = "waiting", DiagnosticStatus.WARN, "waiting for the first tick"
        elif result.status == "running":
            state = "running" if runtime.enabled else "disabled"
            level = DiagnosticStatus.OK if runtime.enabled else DiagnosticStatus.WARN
            message = state if runtime.enabled else "disabled (dry run: preview only; call ~/enable)"
        else:
            state = "waiting for inputs" if result.status == "waiting" else result.status
            level = DiagnosticStatus.WARN if result.status == "waiting" else DiagnosticStatus.ERROR
            message = f"{state}: {self._describe(result.problems)}"
        status.level, status.message = level, message
        values["state"] = state
        values["control_enabled"] = str(runtime.enabled)
        values["execution"] = runtime.config.execution
        values["device"] = str(runtime.device)
        values["inference"] = runtime.inference.state + (f": {runtime.inference.reason}"
                                                         if runtime.inference.reason else "")
        values["target_rate_hz"] = f"{runtime.spec.fps:g}"
        values["decisions"] = str(runtime.decisions)
        if worker is not None:
            for name, stats in (("latency", worker.latency_s), ("jitter", worker.jitter_s)):
                for q in (50, 99):
                    v = stats.percentile(q)
                    values[f"{name}_p{q}_ms"] = "n/a" if v is None else f"{v * 1e3:.2f}"
            rate = worker.achieved_rate_hz()
            values["achieved_rate_hz"] = "n/a" if rate is None else f"{rate:.2f}"
            values["ticks_missed"] = str(worker.ticks_missed)
            values["clock_jumps"] = str(worker.clock_jumps)
            values["tick_errors"] = str(worker.tick_errors)
        values["clock_steps_back"] = str(runtime.clock_events)
        if runtime.last_clock_event is not None:
            values["last_clock_step_back"] = runtime.last_clock_event
        for stream, age in runtime.input_ages_s(now_s).items():
            if age is None:  # nothing stamped at or before now: never received, or stamped ahead of the clock
                age_text = "never" if runtime.received[stream] == 0 else "none at or before now"
            else:
                age_text = f"{age:.3f}"
            values[f"age_s {stream} ({self._labels.get(stream, '-')})"] = age_text
        for camera, dropped in runtime.frames_dropped().items():
            values[f"frames_dropped {camera}"] = str(dropped)
        for camera, n in runtime.frames_encoded.items():
            values[f"frames_encoded {camera}"] = str(n)
        if result is not None:
            for stream, reason in result.problems.items():
                values[f"problem {stream} ({self._labels.get(stream, '-')})"] = reason
        status.values = [KeyValue(key=k, value=v) for k, v in values.items()]
        array = DiagnosticArray(status=[status])
        array.header.stamp = self.get_clock().now().to_msg()
        return array


def main(args=None) -> None:
    run_node(PolicyNode, args)


if __name__ == "__main__":
    main()
