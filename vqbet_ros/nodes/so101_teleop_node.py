"""A scripted leader arm for the simulated SO-101: publishes the joint targets a person moving a leader arm
would, computed by `so101.expert.ScriptedExpert` (inverse kinematics; pick the block, place it on a pad).

It watches the sim's status and the block pose. At the first status of each episode it plans from the block's
pose (the expert's variation drawn from `seed` + episode), then answers every status (one per control period)
with the six joint targets for the end of the next period, as `std_msgs/Float64MultiArray` in
`so101.scene.JOINT_NAMES` order on `command_topic` (the sim's forward-command input, where a recorder also
hears it). It keeps watching the block: when the jaws have closed and lifted but the block still lies on the
table, the expert grasps again (`grasp_attempts`). With `disturbance_rad` > 0 the follower is pushed off the
path until the first grasp (DART-style demos, `so101/disturbance.py`): `command_topic` gets the targets plus
the push, and `leader_topic` the targets alone, for the recorder to record as the action. In lockstep
(`mode: fast` of the sim) that is exactly one command per period. When the sim reports an episode done, it
asks the sim for the next one (`~/reset`) until `num_episodes` have run, then the node is finished (its
process exits).

With a recorder (`start_episode_service` set) each episode is one demo, as an operator records one: the arm is
held at its rest pose (the expert's first target) until the recorder has heard that command and started the
episode, then the expert runs from its beginning; when the sim reports the episode done the demo is saved
(`stop_episode_service`), or discarded (`discard_episode_service`) if the task failed and `discard_failed` is
set, since a failed demonstration teaches the policy to fail.
"""
from __future__ import annotations

import numpy as np
from geometry_msgs.msg import PoseStamped
from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from std_msgs.msg import Float64MultiArray
from std_srvs.srv import Trigger

from vqbet_ros.nodes.entry import run_node
from vqbet_ros.nodes.msg_convert import pose_stamped_to_array
from vqbet_ros.nodes.parameters import NodeParameters
from vqbet_ros.nodes.recorder_client import SERVICE_PARAMETERS, RecorderClient
from vqbet_ros.nodes.so101_sim_node import COMMAND_QOS, SENSOR_QOS, STATUS_FIELDS
from vqbet_ros.so101 import scene
from vqbet_ros.so101.disturbance import FollowerDisturbance
from vqbet_ros.so101.expert import ScriptedExpert

_SUCCESS, _TIME, _EPISODE, _DONE, _SEC, _NANOSEC = (
    STATUS_FIELDS.index(f) for f in ("success", "time_s", "episode", "done", "stamp_sec", "stamp_nanosec"))

PARAMETERS = {  # name: (default, description)
    "seed": (0, "episode n's variation (pad, grasp yaw, approach side, pace) is drawn from seed + n"),
    "num_episodes": (1, "episodes to run; after the last one ends the node is finished (0: never)"),
    "control_hz": (30.0, "the sim's control rate: a command is for the end of the next period"),
    "sim_node": ("so101_sim", "name of the sim node (its `~/reset` service)"),
    "status_topic": ("so101/status", "the sim's status (paces the commands)"),
    "block_pose_topic": ("so101/block_pose", "the sim's block pose (the expert plans from it, and looks again "
                                             "after each grasp)"),
    "grasp_attempts": (3, "grasps per episode: after a grasp that did not lift the block the expert opens the "
                          "jaws and grasps again, this many times in all (1 = never again)"),
    "command_topic": ("forward_position_controller/commands", "where the joint targets go"),
    "leader_topic": ("", "where the leader's own targets also go, undisturbed (what a recorder records as the "
                         "action when `disturbance_rad` > 0); empty = nowhere"),
    "disturbance_rad": (0.0, "push the follower off the expert's path until the first grasp: a smooth random "
                             "offset of this standard deviation on each arm joint's command (so101/disturbance.py), "
                             "faded out just before the jaws close; needs `leader_topic`. 0 = off"),
    "disturbance_time_constant_s": (0.5, "how slowly the disturbance wanders (its correlation time)"),
    "reset_first": (False, "start the first episode itself (the sim's `~/reset`) once the sim and the recorder "
                           "answer; for a sim started with `first_episode_at_start: false`"),
    **SERVICE_PARAMETERS,
    "discard_episode_service": ("", "recorder service called after a failed demo when `discard_failed` "
                                    "(std_srvs/Trigger); empty = failed demos are saved too"),
    "discard_failed": (True, "discard a demo in which the task failed (needs `discard_episode_service`)"),
}


class SO101TeleopNode(Node):
    """Scripted leader arm; see the module docstring."""

    def __init__(self, **kwargs):
        super().__init__("so101_teleop", **kwargs)
        params = NodeParameters(self)
        params.declare_all(PARAMETERS)
        self._p = params.values(PARAMETERS)
        for name in ("status_topic", "block_pose_topic", "command_topic"):
            params.topic(name)
        if self._p["leader_topic"]:
            params.topic("leader_topic")
        for name in ("start_episode_service", "stop_episode_service", "discard_episode_service"):
            if self._p[name]:
                params.topic(name)
        if self._p["control_hz"] <= 0:
            raise ValueError(f"parameter `control_hz` is {self._p['control_hz']}; expected Hz > 0")
        if self._p["grasp_attempts"] < 1:
            raise ValueError(f"parameter `grasp_attempts` is {self._p['grasp_attempts']}; expected at least 1 "
                             "(1: the expert never grasps again after a miss)")
        if self._p["disturbance_rad"] < 0 or self._p["disturbance_time_constant_s"] <= 0:
            raise ValueError(f"parameters `disturbance_rad` = {self._p['disturbance_rad']} and "
                             f"`disturbance_time_constant_s` = {self._p['disturbance_time_constant_s']}: "
                             "expected radians >= 0 and seconds > 0")
        if self._p["disturbance_rad"] > 0 and not self._p["leader_topic"]:
            raise ValueError(f"parameter `disturbance_rad` is {self._p['disturbance_rad']} but `leader_topic` is "
                             "empty: a recorder would record the disturbed commands as the action; set "
                             "`leader_topic` (and the recorder's `action_topic` to it) or `disturbance_rad: 0`")
        self.disturbance = FollowerDisturbance(self._p["disturbance_rad"],
                                               self._p["disturbance_time_constant_s"], self._p["control_hz"])
        self.expert = ScriptedExpert(scene.build_spec().compile(), self._p["grasp_attempts"])
        self.finished = False
        self.failed = False  # finished because it gave up (the process exits 1)
        self.episodes_done = 0
        self.saved: list[int] = []  # sim episodes saved as demos by the recorder
        self.discarded: list[int] = []  # sim episodes discarded (the task failed)
        self._episode: int | None = None  # the sim episode planned for
        # idle -> [preroll -> starting (recorder)] -> playing -> ending (recorder) -> idle
        self._phase = "idle"
        self._preroll_time = 0.0  # the status time the rest-pose hold answered
        self._status_time = 0.0  # the newest status's time (what a command answers)
        self._t0: float | None = None  # the status time at which the expert's path starts
        self._block_pose = None
        self._command_pub = self.create_publisher(Float64MultiArray, self._p["command_topic"], COMMAND_QOS)
        self._leader_pub = (self.create_publisher(Float64MultiArray, self._p["leader_topic"], COMMAND_QOS)
                            if self._p["leader_topic"] else None)
        self.create_subscription(PoseStamped, self._p["block_pose_topic"], self._on_block_pose, SENSOR_QOS)
        self.create_subscription(Float64MultiArray, self._p["status_topic"], self._on_status, COMMAND_QOS)
        self._reset = self.create_client(Trigger, f"{self._p['sim_node']}/reset")
        discard = self._p["discard_episode_service"] if self._p["discard_failed"] else ""
        self._recorder = RecorderClient(self, self._p["start_episode_service"], self._p["stop_episode_service"],
                                        discard)
        if self._p["reset_first"]:
            self._waiting = self.create_timer(0.1, self._reset_when_ready,
                                              clock=Clock(clock_type=ClockType.STEADY_TIME))

    def _reset_when_ready(self) -> None:
        """The first reset, once the sim's reset and status and the recorder's services are there (so the
        teleop hears the episode's first status)."""
        if (self._reset.service_is_ready() and self._recorder.services_ready()
                and self.count_publishers(self._p["status_topic"]) > 0):
            self.destroy_timer(self._waiting)
            self._reset.call_async(Trigger.Request())

    def _on_block_pose(self, msg: PoseStamped) -> None:
        pose, _ = pose_stamped_to_array(msg)  # [x, y, z, qx, qy, qz, qw]
        stamp = (msg.header.stamp.sec, msg.header.stamp.nanosec)
        self._block_pose = (stamp, [*pose[:3], pose[6], *pose[3:6]])  # the sim's order: x, y, z, qw, qx, qy, qz

    def _on_status(self, msg: Float64MultiArray) -> None:
        if self.finished or len(msg.data) != len(STATUS_FIELDS):
            return
        episode, t = int(msg.data[_EPISODE]), float(msg.data[_TIME])
        if msg.data[_DONE]:
            if episode == self._episode and self._phase == "playing":
                self._episode_over(episode, success=bool(msg.data[_SUCCESS]))
            return
        if episode != self._episode:
            if not self._recorder.services_ready():
                return  # the sim holds still; the next status asks again
            # The pose of this very instant (the sim publishes it, with the same stamp, before the status).
            stamp = (int(msg.data[_SEC]), int(msg.data[_NANOSEC]))
            if self._block_pose is None or self._block_pose[0] != stamp:
                return
            choice = self.expert.plan(self._block_pose[1], seed=self._p["seed"] + episode)
            self.disturbance.reset(self._p["seed"] + episode)
            self._episode, self._t0 = episode, None
            self.get_logger().info(f"episode {episode}: {choice}")
            self._phase, self._preroll_time = ("preroll", t) if self._recorder.records else ("playing", t)
        self._status_time = t
        if self._phase == "preroll" and t > self._preroll_time:
            # The hold was executed, so the recorder has heard a command. The sim now waits (no command)
            # until the recorder has started: a demo begins at the episode's start however long that takes.
            # Each refusal (a stream not heard yet, typically at start-up) lets the sim run one more period at
            # rest, so every stream is published again and the recorder hears a fresh command.
            self._phase = "starting"
            self._recorder.start(self._on_recording_started, self._fail, on_refused=self._command)
        elif self._phase in ("preroll", "playing"):
            self._command()

    def _command(self) -> None:
        """Answer the newest status: the expert's targets for the end of the next period, or the rest pose
        before the demo has started. The leader's targets go out first: in lockstep the sim moves on as soon
        as it has the follower's command, and a recorder must already hold the action of that period."""
        disturbance = np.zeros(len(scene.JOINT_NAMES))
        if self._phase == "playing":
            self._t0 = self._status_time if self._t0 is None else self._t0
            t = self._status_time - self._t0 + 1.0 / self._p["control_hz"]
            if self.expert.regrasp_if_missed(t, self._block_pose[1]):
                self.get_logger().info(f"episode {self._episode}: the grasp missed the block; grasping again "
                                       f"(grasp {self.expert.attempt} of {self._p['grasp_attempts']})")
            target = self.expert.target(t)
            disturbance = self.disturbance.step_before(t, self.expert.first_grasp_time_s)
        else:
            target = self.expert.target(0.0)
        if self._leader_pub is not None:
            self._leader_pub.publish(Float64MultiArray(data=target.tolist()))
        self._command_pub.publish(Float64MultiArray(data=(target + disturbance).tolist()))

    def _on_recording_started(self) -> None:
        self._phase = "playing"
        self._command()

    def _episode_over(self, episode: int, success: bool) -> None:
        self._phase = "ending"
        if success or not self._recorder.discards:
            self._recorder.stop(lambda: self._next_episode(episode, self.saved), self._fail)
        else:
            self.get_logger().warning(f"episode {episode}: the task failed; discarding the demo")
            self._recorder.discard(lambda: self._next_episode(episode, self.discarded), self._fail)

    def _next_episode(self, episode: int, outcome: list[int]) -> None:
        if self._recorder.records:
            outcome.append(episode)
        self.episodes_done += 1
        self._episode, self._phase = None, "idle"
        if self._p["num_episodes"] and self.episodes_done >= self._p["num_episodes"]:
            if self._recorder.records:
                self.get_logger().info(f"demos saved: {len(self.saved)}, discarded (task failed): "
                                       f"{len(self.discarded)} {self.discarded}")
            self.finished = True
            return
        if not self._reset.service_is_ready():
            self.get_logger().error(f"`{self._p['sim_node']}/reset` is not available; cannot start the next "
                                    "episode (set `sim_node` to the sim's name)", throttle_duration_sec=5.0)
            return
        self._reset.call_async(Trigger.Request())

    def _fail(self, message: str) -> None:
        self.get_logger().error(f"{message}; teleop stopped")
        self._phase = "idle"
        self.failed = self.finished = True


def main(args=None) -> None:
    run_node(SO101TeleopNode, args, done=lambda node: node.finished, failed=lambda node: node.failed)


if __name__ == "__main__":
    main()
