"""How a policy meets the PushT sim: the topics the sim node offers and `wiring(spec)`, the policy node
parameters that connect a checkpoint to them. ROS-free (names and dicts only), so that the launch file
(`launch/sim_demo.launch.py`) and `vqbet-demo` (`demo_pusht.py`) share it.

The checkpoint's 2 joints map to `agent_x`, `agent_y` (by name, else in order), its camera to the sim camera,
and each low-dim input to the sim topic of that name, else of that size (18: the Diffusion Policy keypoints,
16: gym_pusht's keypoints, 3: block pose).
"""
from __future__ import annotations

from dataclasses import astuple, dataclass, fields

from vqbet_ros.model.checkpoint_search import CheckpointName

# PushT falls back to any checkpoint: a models folder of PushT checkpoints only, named otherwise.
CHECKPOINT = CheckpointName("pusht", "state", any_if_none=True)
SIM_NODE = "pusht_sim"  # the sim node's name (its ~/reset service)
TRAJECTORY_TOPIC = "/pusht/joint_trajectory"
STATUS_TOPIC = "/pusht/status"
LOW_DIM_TOPICS_BY_SIZE = {18: "keypoints", 16: "keypoints_gym", 3: "block_pose"}


@dataclass(frozen=True)
class PushTStatus:
    """What `STATUS_TOPIC` says after each observation, as a `Float64MultiArray` of these fields in this order
    (`STATUS_FIELDS`; the layout's dim label lists them). The message has no header, so the last two fields
    carry the exact stamp of the observation it belongs to."""

    coverage: float  # of the goal by the block
    success: bool  # `episode.is_success(coverage)`
    step: int  # control steps since the episode's reset
    episode: int  # episodes started before this one
    done: bool  # the episode is over; the sim waits for ~/reset
    stamp_sec: int = 0
    stamp_nanosec: int = 0

    def to_values(self) -> list[float]:
        return [float(v) for v in astuple(self)]

    @classmethod
    def from_values(cls, values) -> PushTStatus:
        coverage, success, step, episode, done, sec, nanosec = values
        return cls(float(coverage), success > 0.5, int(step), int(episode), done > 0.5, int(sec), int(nanosec))


STATUS_FIELDS = tuple(f.name for f in fields(PushTStatus))


def wiring(spec) -> dict:
    """Policy node parameters that connect a checkpoint with this spec to the PushT sim's topics."""
    from vqbet_ros.pusht.robot import JOINT_NAMES

    params: dict = {"joint_states_topic": "/joint_states", "trajectory_topic": TRAJECTORY_TOPIC}
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
