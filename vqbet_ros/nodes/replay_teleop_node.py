"""Replays the human PushT demonstrations as teleop commands into the sim, so a recorder records them via ROS.

For each demo episode in `episodes` (from the Diffusion Policy zarr at `zarr_path`):
1. set the sim's `initial_state` parameter to the demo's first state and call the sim's `~/reset`;
2. with a recorder (`start_episode_service` set): command one step holding the agent where it starts (the
   robot is at rest, so nothing moves; the recorder refuses to start before it has heard a command, so its
   `action_max_age_s` must exceed one control period), then call the start service (retried a few times if
   refused, e.g. while a camera is not heard yet);
3. publish the demo's actions on `command_topic`: the first at once, then one per new sim observation (the
   step counter of the sim's status topic). In lockstep (`mode: fast`) action k is exactly the target of the
   sim's k-th step; in real time a command can land a step early or late, as a human's would (the robot holds
   still until the first one, so the demo still starts from its recorded state);
4. after the observation that follows the last action (or when the sim reports the episode done), call the
   recorder's stop service (`stop_episode_service`, optional) and go on with the next demo.
The node exits (`finished`) when every listed episode was replayed.

Commands are one-point `trajectory_msgs/JointTrajectory` messages (`message_type: joint_trajectory`, the
default) stamped with the observation they answer and due one step later (the end of the step they command),
or `std_msgs/Float64MultiArray` [agent_x, agent_y] (`float64_multiarray`). The stamp matters to a recorder:
it pairs each frame with the latest command stamped at or before the frame, and a header-less command only
has its receive time, a little after the observation it answers, so it would be paired with the next frame.
Because the sim resets the block exactly to the demo's pose and the physics is deterministic, the replayed
episode is the human demonstration (test/test_sim_demo_replay.py).
"""
from __future__ import annotations

import re
from pathlib import Path

from builtin_interfaces.msg import Duration, Time
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.parameter_client import AsyncParameterClient
from std_msgs.msg import Float64MultiArray
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from vqbet_ros.config_io import ConfigError
from vqbet_ros.nodes.entry import run_node
from vqbet_ros.nodes.parameters import NodeParameters
from vqbet_ros.nodes.pusht_sim_node import COMMAND_QOS
from vqbet_ros.nodes.recorder_client import SERVICE_PARAMETERS, RecorderClient
from vqbet_ros.pusht.demo_replay import PushTDemos
from vqbet_ros.pusht.robot import CONTROL_HZ, JOINT_NAMES
from vqbet_ros.pusht.wiring import SIM_NODE, PushTStatus

DEFAULT_ZARR = Path(__file__).resolve().parents[2].parent / "shared/external/pusht_cchi_v7_replay.zarr"

PARAMETERS = {  # name: (default, description[, allowed values: NodeParameters.declare's choices / low / high])
    "zarr_path": (str(DEFAULT_ZARR), "Diffusion Policy PushT zarr with the human demos"),
    "episodes": ([0], "demo episode indices to replay, in order (unless `num_episodes` is set)", {"low": 0}),
    "num_episodes": (0, "> 0: replay demo episodes 0 .. num_episodes - 1 instead of `episodes`", {"low": 0}),
    "max_steps": (0, "replay at most this many steps of each demo (0 = all)", {"low": 0}),
    "sim_node": (SIM_NODE, "name of the sim node (its `initial_state` parameter and `~/reset` service)"),
    "status_topic": ("pusht/status", "the sim's status topic (its step counter paces the replay)"),
    "command_topic": ("", "where teleop commands go (the sim and the recorder listen); empty = the sim's input "
                          "for `message_type`: pusht/commands or pusht/joint_trajectory"),
    "message_type": ("joint_trajectory", "`joint_trajectory` (stamped with the observation it answers) or "
                                         "`float64_multiarray` (no stamp)",
                     {"choices": ("joint_trajectory", "float64_multiarray")}),
    **SERVICE_PARAMETERS,
}


class ReplayTeleopNode(Node):
    """Drives the PushT sim with recorded human demonstrations; see the module docstring."""

    def __init__(self, **kwargs):
        super().__init__("replay_teleop", **kwargs)
        self._params = NodeParameters(self)
        self._params.declare_all(PARAMETERS)
        # A ConfigError ends the process with one line (entry.run_node).
        p = self._params.values(PARAMETERS)
        self._params.topic("status_topic")
        self._params.topic("sim_node", suffix="/reset")
        for name in ("command_topic", "start_episode_service", "stop_episode_service"):
            if p[name]:  # empty: the default or none
                self._params.topic(name)
        try:
            self._demos = PushTDemos(p["zarr_path"])
        except FileNotFoundError as err:
            raise ConfigError(f"parameter `zarr_path` (a Diffusion Policy PushT zarr): {err}") from None
        source = "num_episodes" if p["num_episodes"] > 0 else "episodes"
        episodes = list(range(p["num_episodes"])) if p["num_episodes"] > 0 else p["episodes"]
        missing = [index for index in episodes if index >= self._demos.num_episodes]
        if missing:
            raise ConfigError(f"parameter `{source}` asks for demo episode {missing[0]}; `{p['zarr_path']}` has "
                              f"episodes 0..{self._demos.num_episodes - 1}: choose among them")
        self._episode_queue = episodes
        self._max_steps = p["max_steps"] or None
        self._trajectory = p["message_type"] == "joint_trajectory"

        msg_type = JointTrajectory if self._trajectory else Float64MultiArray
        topic = p["command_topic"] or ("pusht/joint_trajectory" if self._trajectory else "pusht/commands")
        self._command_pub = self.create_publisher(msg_type, topic, COMMAND_QOS)
        self.create_subscription(Float64MultiArray, p["status_topic"], self._on_status, COMMAND_QOS)
        self._params = AsyncParameterClient(self, p["sim_node"])
        self._reset = self.create_client(Trigger, f"{p['sim_node']}/reset")
        self._recorder = RecorderClient(self, p["start_episode_service"], p["stop_episode_service"])

        self.finished = False
        self.failed = False  # finished because it gave up (the process exits 1)
        self.replayed: list[int] = []  # demo episodes fully replayed
        self._demo = None
        self._sim_episode: int | None = None  # the sim's episode number of the demo being replayed
        # sim episode -> (newest step seen on the status topic, stamp of its observation); kept for every episode
        # because the first status of a new episode can arrive before the reset's reply names the episode.
        self._newest: dict[int, tuple[int, Time]] = {}
        self._last_step = -1  # the newest sim step answered with a command
        self._next_action = 0
        # idle -> await_obs (sim reset) -> [preroll -> starting (recorder)] -> playing -> idle
        self._phase = "idle"
        self._preroll_step = -1  # the observation the pre-roll hold answered
        self._waiting_for_services = self.create_timer(0.1, self._begin_when_ready)

    # --- sequencing (every step continues in the callback of the previous one; nothing blocks) ---
    def _begin_when_ready(self) -> None:
        if (self._reset.service_is_ready() and self._recorder.services_ready()
                and self._params.services_are_ready()):
            self.destroy_timer(self._waiting_for_services)
            self._next_demo()

    def _next_demo(self) -> None:
        if not self._episode_queue:
            self.get_logger().info(f"replayed demo episodes {self.replayed}")
            self.finished = True
            return
        index = self._episode_queue.pop(0)
        self._demo = self._demos.episode(index, max_steps=self._max_steps)
        state = Parameter("initial_state", Parameter.Type.DOUBLE_ARRAY, self._demo.initial_state.tolist())
        self._params.set_parameters([state], callback=self._on_initial_state_set)

    def _on_initial_state_set(self, future) -> None:
        result = future.result().results[0]
        if not result.successful:
            self._fail(f"the sim refused `initial_state`: {result.reason}")
            return
        self._reset.call_async(Trigger.Request()).add_done_callback(self._on_sim_reset)

    def _on_sim_reset(self, future) -> None:
        response = future.result()
        match = re.match(r"episode (\d+)", response.message)
        if not response.success or match is None:
            self._fail(f"the sim's reset failed: {response.message!r}")
            return
        self._sim_episode = int(match.group(1))
        self._phase = "await_obs"
        if self._sim_episode in self._newest:  # its first status came before the reply
            self._begin_episode(*self._newest[self._sim_episode])

    def _begin_episode(self, step: int, stamp: Time) -> None:
        """The sim shows the demo's first state (observation `step`, stamped `stamp`)."""
        if not self._recorder.records:
            self._play()
            return
        # A recorder refuses to start before it has a fresh command: pre-roll one step holding the agent where
        # the demo starts (the robot is at rest, so nothing moves), then start recording.
        self._phase, self._preroll_step = "preroll", step
        self._publish_target(self._demo.initial_state[:2], stamp)

    def _start_recording(self) -> None:
        self._phase = "starting"
        self._recorder.start(self._play, self._fail)

    def _play(self) -> None:
        self.get_logger().info(f"replaying demo episode {self._demo.index} ({len(self._demo)} steps) "
                               f"as sim episode {self._sim_episode}")
        step, stamp = self._newest[self._sim_episode]
        self._phase, self._next_action, self._last_step = "playing", 0, step
        self._send_next_action(stamp)

    def _on_status(self, msg: Float64MultiArray) -> None:
        status = PushTStatus.from_values(msg.data)
        episode, step = status.episode, status.step
        stamp = Time(sec=status.stamp_sec, nanosec=status.stamp_nanosec)
        if step >= self._newest.get(episode, (-1, None))[0]:
            self._newest[episode] = (step, stamp)
        if episode != self._sim_episode:
            return  # an old episode (or one not yet named by the reset's reply)
        if self._phase == "await_obs":
            self._begin_episode(step, stamp)
        elif self._phase == "preroll" and step > self._preroll_step:
            self._start_recording()  # the hold was executed: the recorder has heard a command
        elif self._phase == "playing" and step > self._last_step:  # else: the still robot, or answered
            self._last_step = step
            if self._next_action >= len(self._demo) or status.done:
                self._finish_demo()
            else:
                self._send_next_action(stamp)

    def _send_next_action(self, stamp: Time | None) -> None:
        self._publish_target(self._demo.actions[self._next_action], stamp)
        self._next_action += 1

    def _publish_target(self, target, stamp: Time | None) -> None:
        if self._trajectory:
            msg = JointTrajectory(joint_names=list(JOINT_NAMES))
            msg.header.stamp = stamp if stamp is not None else Time()  # zero: "now"
            msg.points.append(JointTrajectoryPoint(positions=target.tolist(),
                                                   time_from_start=Duration(nanosec=int(1e9 / CONTROL_HZ))))
        else:
            msg = Float64MultiArray(data=target.tolist())
        self._command_pub.publish(msg)

    def _finish_demo(self) -> None:
        self._phase = "idle"
        self.replayed.append(self._demo.index)
        self._recorder.stop(self._next_demo, self._fail)

    def _fail(self, message: str) -> None:
        self.get_logger().error(f"{message}; replay stopped")
        self._phase = "idle"
        self.failed = self.finished = True


def main(args=None) -> None:
    run_node(ReplayTeleopNode, args, done=lambda node: node.finished, failed=lambda node: node.failed)


if __name__ == "__main__":
    main()
