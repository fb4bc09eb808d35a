"""A scripted leader arm for the simulated SO-101: publishes the joint targets a person moving a leader arm
would, computed by `so101.expert.ScriptedExpert` (inverse kinematics; pick the block, place it on a pad).

It watches the sim's status and the block pose. At the first status of each episode it plans from the block's
pose (the expert's variation drawn from `seed` + episode), then answers every status (one per control period)
with the six joint targets for the end of the next period, as `std_msgs/Float64MultiArray` in
`so101.scene.JOINT_NAMES` order on `command_topic` (the sim's forward-command input, where a recorder also
hears it). In lockstep (`mode: fast` of the sim) that is exactly one command per period. When the sim
reports an episode done, it asks the sim for the next one (`~/reset`) until `num_episodes` have run, then
the node is finished (its process exits).
"""
from __future__ import annotations

from geometry_msgs.msg import PoseStamped
from rclpy.node import Node
from std_msgs.msg import Float64MultiArray
from std_srvs.srv import Trigger

from vqbet_ros.nodes.entry import run_node
from vqbet_ros.nodes.msg_convert import pose_stamped_to_array
from vqbet_ros.nodes.parameters import NodeParameters
from vqbet_ros.nodes.so101_sim_node import COMMAND_QOS, SENSOR_QOS, STATUS_FIELDS
from vqbet_ros.so101 import scene
from vqbet_ros.so101.expert import ScriptedExpert

_TIME, _EPISODE, _DONE, _SEC, _NANOSEC = (
    STATUS_FIELDS.index(f) for f in ("time_s", "episode", "done", "stamp_sec", "stamp_nanosec"))

PARAMETERS = {  # name: (default, description)
    "seed": (0, "episode n's variation (pad, grasp yaw, approach side, pace) is drawn from seed + n"),
    "num_episodes": (1, "episodes to run; after the last one ends the node is finished (0: never)"),
    "control_hz": (30.0, "the sim's control rate: a command is for the end of the next period"),
    "sim_node": ("so101_sim", "name of the sim node (its `~/reset` service)"),
    "status_topic": ("so101/status", "the sim's status (paces the commands)"),
    "block_pose_topic": ("so101/block_pose", "the sim's block pose (the expert looks at it once per episode)"),
    "command_topic": ("forward_position_controller/commands", "where the joint targets go"),
}


class SO101TeleopNode(Node):
    """Scripted leader arm; see the module docstring."""

    def __init__(self, **kwargs):
        super().__init__("so101_teleop", **kwargs)
        params = NodeParameters(self)
        for name, (default, description) in PARAMETERS.items():
            params.declare(name, default, description)
        self._p = {name: params.value(name) for name in PARAMETERS}
        for name in ("status_topic", "block_pose_topic", "command_topic"):
            params.topic(name)
        if self._p["control_hz"] <= 0:
            raise ValueError(f"parameter `control_hz` is {self._p['control_hz']}; expected Hz > 0")
        self.expert = ScriptedExpert(scene.build_spec().compile())
        self.finished = False
        self.episodes_done = 0
        self._episode: int | None = None  # the sim episode planned for
        self._block_pose = None
        self._command_pub = self.create_publisher(Float64MultiArray, self._p["command_topic"], COMMAND_QOS)
        self.create_subscription(PoseStamped, self._p["block_pose_topic"], self._on_block_pose, SENSOR_QOS)
        self.create_subscription(Float64MultiArray, self._p["status_topic"], self._on_status, COMMAND_QOS)
        self._reset = self.create_client(Trigger, f"{self._p['sim_node']}/reset")
        self._resetting = False

    def _on_block_pose(self, msg: PoseStamped) -> None:
        pose, _ = pose_stamped_to_array(msg)  # [x, y, z, qx, qy, qz, qw]
        stamp = (msg.header.stamp.sec, msg.header.stamp.nanosec)
        self._block_pose = (stamp, [*pose[:3], pose[6], *pose[3:6]])  # the sim's order: x, y, z, qw, qx, qy, qz

    def _on_status(self, msg: Float64MultiArray) -> None:
        if self.finished or len(msg.data) != len(STATUS_FIELDS):
            return
        episode, done = int(msg.data[_EPISODE]), bool(msg.data[_DONE])
        if done:
            self._episode_over(episode)
            return
        if episode != self._episode:
            # The pose of this very instant (the sim publishes it, with the same stamp, before the status).
            stamp = (int(msg.data[_SEC]), int(msg.data[_NANOSEC]))
            if self._block_pose is None or self._block_pose[0] != stamp:
                return
            choice = self.expert.plan(self._block_pose[1], seed=self._p["seed"] + episode)
            self._episode = episode
            self.get_logger().info(f"episode {episode}: {choice}")
        target = self.expert.target(msg.data[_TIME] + 1.0 / self._p["control_hz"])
        self._command_pub.publish(Float64MultiArray(data=target.tolist()))

    def _episode_over(self, episode: int) -> None:
        if self._resetting or episode != self._episode:
            return
        self.episodes_done += 1
        self._episode = None
        if self._p["num_episodes"] and self.episodes_done >= self._p["num_episodes"]:
            self.finished = True
            return
        if not self._reset.service_is_ready():
            self.get_logger().error(f"`{self._p['sim_node']}/reset` is not available; cannot start the next "
                                    "episode (set `sim_node` to the sim's name)", throttle_duration_sec=5.0)
            return
        self._resetting = True
        self._reset.call_async(Trigger.Request()).add_done_callback(self._on_reset_done)

    def _on_reset_done(self, future) -> None:
        self._resetting = False


def main(args=None) -> None:
    run_node(SO101TeleopNode, args, done=lambda node: node.finished)


if __name__ == "__main__":
    main()
