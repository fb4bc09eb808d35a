"""Runtime chunk -> `trajectory_msgs/JointTrajectory` (the one place a chunk becomes a message).

Stamping rule (see `runtime/chunk.py`): `header.stamp` = the control tick at which the chunk's newest
observation was sampled (node clock; sim time under `use_sim_time`), point k has
`time_from_start = (k + 1) / fps`. A joint_trajectory_controller keeps only the points still in the future
when the message arrives, so the decision latency is compensated by the controller itself, and it refuses a
message whose last point is already past ("ends in the past") instead of executing stale commands.
"""
from __future__ import annotations

from builtin_interfaces.msg import Duration, Time
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from vqbet_ros.runtime.chunk import ActionChunk


def seconds_to_time(t_s: float) -> Time:
    ns = int(round(t_s * 1e9))
    return Time(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)


def seconds_to_duration(t_s: float) -> Duration:
    ns = int(round(t_s * 1e9))
    return Duration(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)


def chunk_to_joint_trajectory(chunk: ActionChunk, joint_names: list[str] | None = None) -> JointTrajectory:
    """The whole chunk as one trajectory; `joint_names` renames the columns (robot names), default the
    checkpoint's `action_names`."""
    msg = JointTrajectory()
    msg.header.stamp = seconds_to_time(chunk.start_stamp_s)
    msg.joint_names = list(joint_names or chunk.joint_names)
    for row, t in zip(chunk.positions, chunk.times_from_start_s):
        msg.points.append(JointTrajectoryPoint(positions=[float(v) for v in row],
                                               time_from_start=seconds_to_duration(float(t))))
    return msg


def hold_trajectory(joint_names: list[str]) -> JointTrajectory:
    """An empty trajectory: joint_trajectory_controller stops and holds the current position."""
    msg = JointTrajectory()
    msg.joint_names = list(joint_names)
    return msg
