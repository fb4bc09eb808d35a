"""Recorder node: teleop demonstrations -> LeRobotDataset v3.0, sampled at exactly `fps`.

A managed (lifecycle) node; `config/recorder.yaml` documents every parameter. Cameras, joint states and low-dim
inputs are wired with the policy node's parameters (`nodes/inputs.py`); a name the recorder read before that
(`RENAMED`) ends the process at start with one line naming its replacement.
- configure: parameters -> `RecorderConfig` (what to sample), `LeRobotSinkConfig` (the dataset) and the inputs;
  builds the dataset sink (`data/lerobot_sink.py`: checks the root is writable and locks it; an existing
  dataset is opened for append, leftovers of a crash are removed) and the recorder; creates the services. Any
  error is logged as one line and the transition FAILS.
- activate: subscribes the cameras (`sensor_msgs/Image` or `CompressedImage`), the state
  (`sensor_msgs/JointState`), the teleop command (`JointState`, `JointTrajectory` first point, or
  `Float64MultiArray`) and the low-dim inputs, and starts the sampling timer on the node clock (`use_sim_time` works).
- services (effective while active): `~/start_episode` (refused while a stream is stale; the reply names it),
  `~/stop_episode` (keeps every tick up to now, then saves in the background), `~/discard_episode`;
  all `std_srvs/Trigger`. `vqbet-record-keys` calls them from a keyboard.
- deactivate: an open episode is stopped and saved; cleanup/shutdown: waits for every save, releases the root.

The node only translates: messages -> arrays (`nodes/msg_convert.py`), clock -> seconds; timing, staleness
and episodes live in `runtime/recorder.py`, writing in `data/lerobot_writer.py` (workers off this thread),
which the recorder reaches through the sink the node gives it.

Concurrency: camera and pose subscriptions run in a reentrant group (the stream cache is thread-safe); the state
and the header-less streams run one at a time in creation order on a thread of their own (`_OrderedStreams`),
so a header-less message is stamped after the joint state published before it (`msg_convert.Stamps`). The
timer and the episode services are in two mutually exclusive groups and every call into the recorder takes
`_lock`, so start/stop/discard never interleave with sampling (nor with lifecycle transitions, which run from
the lifecycle services' group). One group for both would starve the services: when ticks take longer than a
period (a loaded machine), the executor finds the timer ready at every turn and hands it the group first.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import rclpy
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.executors import MultiThreadedExecutor, SingleThreadedExecutor
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory

from vqbet_ros import constants
from vqbet_ros.config_io import ConfigError, from_dict
from vqbet_ros.data.lerobot_sink import LeRobotSink, LeRobotSinkConfig
from vqbet_ros.nodes import msg_convert
from vqbet_ros.nodes.entry import AUTOSTART_PARAMETERS, configure_and_activate_when_spun, run_node
from vqbet_ros.nodes.inputs import (
    JOINT_STATES_PARAMETERS,
    Input,
    camera_inputs,
    joint_states_input,
    low_dim_inputs,
    message_input,
)
from vqbet_ros.nodes.parameters import NodeParameters, config_parameters
from vqbet_ros.runtime.recorder import EpisodeRecorder, RecorderConfig

# Stream QoS (parameter `stream_qos`). RELIABLE is the default because a recorder must not lose frames: on a loaded
# 2-core machine a BEST_EFFORT subscriber received 640x480 rgb8 images at ~9 Hz of 30 Hz published (large
# messages are fragmented and a lost fragment loses the frame), a RELIABLE one at ~26 Hz (bench/recorder_load.py
# notes). A RELIABLE subscriber hears nothing from a BEST_EFFORT publisher (docs/ros2.md §2): for such
# drivers set `stream_qos: best_effort`; a refused start says when this is the cause.
STREAM_QOS = {
    "reliable": QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.VOLATILE),
    "best_effort": qos_profile_sensor_data,
}

_SA = Parameter.Type.STRING_ARRAY
# Parameters of the recorder and the dataset: their fields, under the same names (defaults and descriptions live
# in the dataclasses); the cameras and low-dim inputs are the node's `camera_names` and `low_dim_names`.
RECORDER_PARAMETERS = config_parameters(RecorderConfig, exclude=("cameras", "low_dim"))
DATASET_PARAMETERS = config_parameters(LeRobotSinkConfig)
NODE_PARAMETERS = {  # name: (default, description); each camera and low-dim input is wired as in nodes/inputs.py
    "camera_names": (_SA, "cameras (`cameras.<name>.topic`, `cameras.<name>.compressed`); dataset keys "
                          "observation.images.<name>"),
    **JOINT_STATES_PARAMETERS,
    "action_topic": ("", "the teleop command topic -> action (required)"),
    "action_type": ("joint_state", "joint_state | joint_trajectory (first point) | float64_multi_array"),
    "low_dim_names": (_SA, "extra low-dim observations (object pose, keypoints: `low_dim.<name>.topic`, "
                           "`low_dim.<name>.type`); dataset keys observation.<name>"),
    "stream_qos": ("reliable", "`reliable` (no lost frames; needs RELIABLE publishers) or `best_effort` "
                               "(hears every publisher)"),
    **AUTOSTART_PARAMETERS,
}
PARAMETERS = {**RECORDER_PARAMETERS, **DATASET_PARAMETERS, **NODE_PARAMETERS}
# Names the recorder read before it shared the policy node's vocabulary (nodes/inputs.py): refused with the
# replacement, since a parameter nobody declares is ignored without a word.
RENAMED = {
    "camera_topics": "`cameras.<name>.topic` for each camera",
    "camera_transports": "`cameras.<name>.compressed: true` for each compressed camera",
    "low_dim_topics": "`low_dim.<name>.topic` for each low-dim input",
    "low_dim_types": "`low_dim.<name>.type` (float64_multi_array | pose_stamped) for each low-dim input",
    "state_topic": "`joint_states_topic`",
    "state_max_age_s": "`joint_max_age_s`",
    "camera_max_age_s": "`image_max_age_s`",
}

# `action_type` -> (message type, converter); a Float64MultiArray has no header (`msg_convert.Stamps.headerless`).
ACTION_TYPES = {
    "joint_state": (JointState, msg_convert.joint_state_to_array),
    "joint_trajectory": (JointTrajectory, msg_convert.joint_trajectory_to_array),
    "float64_multi_array": (Float64MultiArray, msg_convert.float64_multiarray_to_array),
}


@dataclass(frozen=True)
class RecorderSetup:
    """The node's parameters, sorted: what the recorder samples, where the dataset goes, and per stream
    (dataset key) where it comes from (cameras, state, action, low-dim inputs, in the order of subscription)."""

    recorder: RecorderConfig
    dataset: LeRobotSinkConfig
    inputs: dict[str, Input]


class _OrderedStreams:
    """Subscriptions handled one at a time, in creation order, by a helper node on a thread of its own.

    A header-less message takes the stamp of the newest joint state (`msg_convert.Stamps`), so the joint state
    of an instant must be handled before the header-less messages published after it. A multi-threaded
    executor may start two waiting callbacks in either order, even within one mutually exclusive group; a
    single-threaded executor runs the messages of one wake-up in creation order. Topic names come resolved by
    the recorder (its namespace and remappings); the helper applies no remapping of its own."""

    def __init__(self, owner: LifecycleNode):
        self.node = rclpy.create_node(f"{owner.get_name()}_ordered_streams", namespace=owner.get_namespace(),
                                      context=owner.context, use_global_arguments=False,
                                      start_parameter_services=False)
        self._executor = SingleThreadedExecutor(context=owner.context)
        self._executor.add_node(self.node)
        self._thread = threading.Thread(target=self._executor.spin, name="recorder-ordered-streams", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._executor.shutdown()
        self._thread.join(timeout=5.0)
        self.node.destroy_node()


class RecorderNode(LifecycleNode):
    """Lifecycle node wrapping `EpisodeRecorder` (see module docstring)."""

    def __init__(self, **kwargs):
        super().__init__("recorder", **kwargs)
        self._params = NodeParameters(self)
        try:  # a ConfigError ends the process with one line (entry.run_node)
            self._params.refuse_renamed(RENAMED)
        except ConfigError:
            super().destroy_node()  # else the context destroys this half-built node at shutdown
            raise
        self._params.declare_all(PARAMETERS)
        self._recorder: EpisodeRecorder | None = None
        self._setup: RecorderSetup | None = None
        self._active = False
        self._lock = threading.Lock()  # recorder calls from the timer, services and lifecycle transitions
        self._control_group = MutuallyExclusiveCallbackGroup()  # the sampling timer
        self._service_group = MutuallyExclusiveCallbackGroup()  # start/stop/discard, one at a time
        self._sensor_group = ReentrantCallbackGroup()  # cameras, poses: only touch the thread-safe cache
        self._stamps = msg_convert.Stamps(self._now_s)
        self._ordered: _OrderedStreams | None = None  # state + header-less streams, while active
        self._episode_services = []
        self._stream_subs = []
        self._refused: dict[str, str] = {}  # key -> why its latest message was refused (cleared by a good one)
        self._timer = None
        if self._params.value("autostart"):
            configure_and_activate_when_spun(self)

    # ----------------------------------------------------------------------------------------- parameters
    def read_config(self) -> RecorderSetup:
        params = self._params
        p = params.values(PARAMETERS)
        if p["stream_qos"] not in STREAM_QOS:
            raise ValueError(f"`stream_qos` is {p['stream_qos']!r}; expected `reliable` or `best_effort`")
        if not p["dataset_name"]:
            raise ValueError("`dataset_name` is not set; name the dataset folder, e.g. dataset_name:=pick_cube")
        if not p["action_topic"]:
            raise ValueError("`action_topic` is not set; give the teleop command topic")
        if p["action_type"] not in ACTION_TYPES:
            spelled = {name.replace("_", ""): name for name in ACTION_TYPES}.get(p["action_type"].lower())
            raise ValueError(f"`action_type` is {p['action_type']!r}; expected {', '.join(ACTION_TYPES)}"
                             + (f" (`{spelled}` for {p['action_type']})" if spelled else ""))
        recorder = from_dict(RecorderConfig, {**{name: p[name] for name in RECORDER_PARAMETERS},
                                              "cameras": p["camera_names"], "low_dim": p["low_dim_names"]})
        dataset = from_dict(LeRobotSinkConfig, {name: p[name] for name in DATASET_PARAMETERS})
        msg_type, convert = ACTION_TYPES[p["action_type"]]
        action = message_input(constants.ACTION, params.topic("action_topic"), msg_type,
                               lambda m: convert(m, recorder.action_names), "action_type")
        # The state before the header-less streams: created first, it is handled first when both have a message.
        inputs = {constants.image_key(c.name): c for c in camera_inputs(params, recorder.cameras)}
        inputs.update({constants.STATE: joint_states_input(params, recorder.joint_names), constants.ACTION: action})
        inputs.update({constants.low_dim_key(i.name): i for i in low_dim_inputs(params, recorder.low_dim)})
        return RecorderSetup(recorder, dataset, inputs)

    # -------------------------------------------------------------------------------------------- lifecycle
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Build the config and open the dataset; FAILURE (back to unconfigured) with one error line."""
        try:
            self._setup = setup = self.read_config()
            sink = LeRobotSink(setup.dataset, setup.recorder.fps, setup.recorder.streams())
            sources = {key: source.topic for key, source in setup.inputs.items()}
            self._recorder = EpisodeRecorder(setup.recorder, sink, sources, on_saved=self._on_saved)
        except Exception as err:  # noqa: BLE001 - any configuration error is reported the same way
            self.get_logger().error(f"configure failed: {err}")
            self._setup, self._recorder = None, None
            return TransitionCallbackReturn.FAILURE
        for name, callback in (("~/start_episode", self._start_cb), ("~/stop_episode", self._stop_cb),
                               ("~/discard_episode", self._discard_cb)):
            self._episode_services.append(self.create_service(Trigger, name, callback,
                                                      callback_group=self._service_group))
        self.get_logger().info(
            f"configured: `{setup.dataset.dataset_root}` ({sink.num_episodes} saved episodes), "
            f"{setup.recorder.fps} fps, cameras {list(setup.recorder.cameras)}"
        )
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Subscribe and start sampling; SUCCESS -> active."""
        cfg = self._setup.recorder
        self._stamps.reset()
        self._ordered = _OrderedStreams(self)
        for key, source in self._setup.inputs.items():
            self._subscribe(key, source)
        self._timer = self.create_timer(1.0 / cfg.fps, self._tick_cb, callback_group=self._control_group)
        self._active = True
        self.get_logger().info("active: call ~/start_episode to record")
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Stop (and save) an open episode, unsubscribe; SUCCESS -> inactive."""
        self._active = False
        self._finish_episodes()
        self._teardown_streams()
        self.get_logger().info("deactivated: streams unsubscribed")
        return super().on_deactivate(state)

    def _finish_episodes(self) -> None:
        """Stop an open episode now and save it and any stopping one with all their ticks, after giving the
        last messages `sample_delay_s` to arrive (subscriptions are still live)."""
        if self._recorder is None or not self._recorder.busy:
            return
        now_s = self._now_s()
        with self._lock:
            self._recorder.stop(now_s)
        time.sleep(self._setup.recorder.sample_delay_s)
        with self._lock:
            message = self._recorder.finish_now(now_s)
        if message:
            self.get_logger().info(message)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Wait for every save, release the dataset, destroy the services; SUCCESS -> unconfigured."""
        self._release()
        self.get_logger().info("cleaned up: dataset released")
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._close()
        return TransitionCallbackReturn.SUCCESS

    def destroy_node(self):
        self._close()  # Ctrl-C is a normal exit: whatever is open is saved before the node goes
        super().destroy_node()

    def _close(self) -> None:
        self._active = False
        self._finish_episodes()
        self._teardown_streams()
        self._release()

    def _release(self) -> None:
        with self._lock:
            recorder, self._recorder = self._recorder, None
        if recorder is not None:
            recorder.close()
        for service in self._episode_services:
            self.destroy_service(service)
        self._episode_services = []

    def _teardown_streams(self) -> None:
        if self._timer is not None:
            self.destroy_timer(self._timer)
            self._timer = None
        for sub in self._stream_subs:
            self.destroy_subscription(sub)
        self._stream_subs = []
        if self._ordered is not None:
            self._ordered.close()
            self._ordered = None
        self._refused.clear()

    # ------------------------------------------------------------------------------------------- callbacks
    def _now_s(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _subscribe(self, key: str, source: Input) -> None:
        """Subscribe `source` for dataset key `key`: each message converted, stamped on the node clock by its
        rule (`msg_convert.Stamps`) and put into the recorder. The state and the header-less streams it stamps
        go to `_OrderedStreams`."""
        recorder = self._recorder  # bound now: a callback still in flight after cleanup must not see None
        stamp = source.stamp(self._stamps)
        label = recorder.labels[key]
        warned = []

        def callback(msg) -> None:
            # No message content may end the process (an exception here would leave the executor): a message
            # that cannot be converted is dropped, logged once per stream, and named when a start is refused.
            try:
                value, stamp_s = source.convert(msg)
            except Exception as err:  # noqa: BLE001 - decoders raise more than ValueError on corrupt data
                self._refused[key] = str(err)
                if not warned:  # once per stream: a wrong topic floods otherwise
                    warned.append(True)
                    self.get_logger().error(f"{label}: message refused: {err}")
                return
            self._refused.pop(key, None)
            recorder.put(key, value, stamp(stamp_s))

        qos = STREAM_QOS[self._params.value("stream_qos")]
        if source.stamp_rule in ("joint_state", "headerless"):
            self._ordered.node.create_subscription(source.msg_type, self.resolve_topic_name(source.topic), callback,
                                                   qos)
        else:
            self._stream_subs.append(self.create_subscription(source.msg_type, source.topic, callback, qos,
                                                              callback_group=self._sensor_group))

    def _tick_cb(self) -> None:
        with self._lock:
            if self._recorder is None:
                return
            report = self._recorder.tick(self._now_s())
        for label, reason in report.newly_stale.items():
            self.get_logger().warning(f"{label}: {reason}")
        if report.error:
            self.get_logger().error(report.error)
        if report.finished:
            self.get_logger().info(report.finished)

    def _refuse_inactive(self, response: Trigger.Response) -> Trigger.Response | None:
        if self._active and self._recorder is not None:
            return None
        response.success, response.message = False, "recorder is not active; activate the lifecycle node first"
        return response

    def _start_cb(self, request, response: Trigger.Response) -> Trigger.Response:
        if self._refuse_inactive(response):
            return response
        now_s = self._now_s()
        with self._lock:
            response.success, response.message = self._recorder.start(now_s)
        if not response.success:
            response.message += self._silence_hints(now_s)
        self._log(response.message, response.success)
        return response

    def _silence_hints(self, now_s: float) -> str:
        """Why a stale stream may be silent: its messages are refused, it is published under another type, nobody
        publishes it, or with a QoS the subscription cannot match."""
        hints = []
        for key, reason in sorted(self._recorder.cache.sample(now_s).stale.items()):
            source = self._setup.inputs[key]
            topic, type_name, type_parameter = source.topic, _type_name(source.msg_type), source.type_parameter
            refused = self._refused.get(key)
            if refused:
                hints.append(f"messages on `{topic}` are refused: {refused}")
                continue
            if reason != "never received":
                continue
            infos = self.get_publishers_info_by_topic(self.resolve_topic_name(topic))
            other_types = sorted({i.topic_type for i in infos} - {type_name})
            if other_types:
                fix = f"set `{type_parameter}` to match" if type_parameter else "publish that type"
                hints.append(f"`{topic}` is published as {', '.join(other_types)} but the recorder subscribes "
                             f"{type_name}; {fix} or remap the topic")
            elif not infos:
                hints.append(f"nobody publishes `{topic}` (check the name or remap)")
            elif self._params.value("stream_qos") == "reliable" and all(
                    i.qos_profile.reliability == ReliabilityPolicy.BEST_EFFORT for i in infos):
                hints.append(f"`{topic}` is published BEST_EFFORT; set stream_qos: best_effort")
        return (". Hints: " + "; ".join(hints)) if hints else ""

    def _stop_cb(self, request, response: Trigger.Response) -> Trigger.Response:
        if self._refuse_inactive(response):
            return response
        with self._lock:
            response.success, response.message = self._recorder.stop(self._now_s())
        self.get_logger().info(response.message)
        return response

    def _discard_cb(self, request, response: Trigger.Response) -> Trigger.Response:
        if self._refuse_inactive(response):
            return response
        with self._lock:
            response.success, response.message = self._recorder.discard()
        self.get_logger().info(response.message)
        return response

    def _on_saved(self, message: str, ok: bool) -> None:  # from the writer's worker thread
        self._log(message, ok)

    def _log(self, message: str, ok: bool) -> None:
        # rclpy binds a severity to each call site, so info and error need separate lines.
        if ok:
            self.get_logger().info(message)
        else:
            self.get_logger().error(message)


def _type_name(msg_type) -> str:
    """`sensor_msgs.msg.Image` -> `sensor_msgs/msg/Image`, the form the ROS graph reports."""
    return f"{msg_type.__module__.split('.')[0]}/msg/{msg_type.__name__}"


def main(args=None) -> None:
    run_node(RecorderNode, args, executor=lambda: MultiThreadedExecutor(num_threads=4))


if __name__ == "__main__":
    main()
