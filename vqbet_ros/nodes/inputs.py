"""Where a node's observations come from: one vocabulary of parameters for the recorder and the policy node.

    cameras.<name>.topic         sensor_msgs/Image, or CompressedImage (JPEG/PNG) with
    cameras.<name>.compressed    true
    joint_states_topic           sensor_msgs/JointState, read by joint name
    low_dim.<name>.topic         std_msgs/Float64MultiArray or geometry_msgs/PoseStamped ([x, y, z, qx, qy, qz, qw])
    low_dim.<name>.type          float64_multi_array | pose_stamped
    low_dim.<name>.indices       policy only: the entries of the message's vector that the checkpoint's input takes

The policy takes the names of its cameras and low-dim inputs from the checkpoint, the recorder from its
`camera_names` and `low_dim_names`; either declares the parameters of those names here, at configure. (Each
node's max ages, `image_max_age_s`, `joint_max_age_s` and `low_dim_max_age_s`, are fields of its config.)

An `Input` carries its message type, its converter (`msg_convert`) and its stamping rule (`msg_convert.Stamps`),
so both nodes decode and stamp a stream the same way.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

from geometry_msgs.msg import PoseStamped
from rclpy.parameter import Parameter
from sensor_msgs.msg import CompressedImage, Image, JointState
from std_msgs.msg import Float64MultiArray

from vqbet_ros.config_io import ConfigError
from vqbet_ros.nodes import msg_convert
from vqbet_ros.nodes.parameters import NodeParameters

# `low_dim.<name>.type` -> message type, converter (a Float64MultiArray has no header: `Stamps.headerless`).
LOW_DIM_TYPES = {
    "float64_multi_array": (Float64MultiArray, msg_convert.float64_multiarray_to_array),
    "pose_stamped": (PoseStamped, msg_convert.pose_stamped_to_array),
}
JOINT_STATES_PARAMETERS = {  # name: (default, description), for a node table
    "joint_states_topic": ("/joint_states", "sensor_msgs/JointState of the robot, read by joint name"),
}


@dataclass(frozen=True)
class Input:
    """One subscribed stream. `convert(msg)` -> (array, header stamp or None); `stamp_rule` names the
    `msg_convert.Stamps` method that puts that stamp on the node clock; `type_parameter` is the parameter
    that chose `msg_type` (None: fixed), for hints."""

    name: str
    topic: str
    msg_type: type
    convert: Callable
    stamp_rule: str
    type_parameter: str | None = None

    def stamp(self, stamps: msg_convert.Stamps) -> Callable[[float | None], float]:
        return getattr(stamps, self.stamp_rule)


def message_input(name: str, topic: str, msg_type: type, convert: Callable,
                  type_parameter: str | None = None) -> Input:
    """An input stamped by its header, or, for a header-less `Float64MultiArray`, by the newest joint state."""
    rule = "headerless" if msg_type is Float64MultiArray else "stamped"
    return Input(name, topic, msg_type, convert, rule, type_parameter)


def camera_inputs(params: NodeParameters, names: Sequence[str]) -> list[Input]:
    """The cameras `names`, declaring their `cameras.<name>.*` parameters."""
    inputs = []
    for name in names:
        params.declare(f"cameras.{name}.topic", f"/{name}/image_raw", f"topic of camera `{name}`")
        params.declare(f"cameras.{name}.compressed", False,
                       "true: sensor_msgs/CompressedImage (jpeg/png) instead of Image")
        compressed = params.value(f"cameras.{name}.compressed")
        msg_type, convert = ((CompressedImage, msg_convert.compressed_image_to_rgb) if compressed
                             else (Image, msg_convert.image_to_rgb))
        inputs.append(message_input(name, params.topic(f"cameras.{name}.topic"), msg_type, convert,
                                    f"cameras.{name}.compressed"))
    return inputs


def joint_states_input(params: NodeParameters, joint_names: Sequence[str]) -> Input:
    """The joint states on `joint_states_topic` (declared with the node's table), read as `joint_names`: the
    reference stamp of the header-less inputs (`Stamps.joint_state`)."""
    names = list(joint_names)
    return Input("joint_states", params.topic("joint_states_topic"), JointState,
                 lambda msg: msg_convert.joint_state_to_array(msg, names), "joint_state")


def low_dim_inputs(params: NodeParameters, names: Sequence[str], sizes: Sequence[int] | None = None) -> list[Input]:
    """The low-dim inputs `names`, declaring their `low_dim.<name>.*` parameters. With `sizes` (the policy's
    checkpoint gives one per input), `low_dim.<name>.indices` picks that many entries of each message."""
    inputs = []
    for k, name in enumerate(names):
        params.declare(f"low_dim.{name}.topic", f"/{name}", f"topic of low-dim input `{name}`")
        params.declare(f"low_dim.{name}.type", "float64_multi_array",
                       "float64_multi_array | pose_stamped ([x, y, z, qx, qy, qz, qw])", choices=tuple(LOW_DIM_TYPES))
        msg_type, convert = LOW_DIM_TYPES[params.value(f"low_dim.{name}.type")]
        if sizes is not None:
            convert = _picked(params, name, sizes[k], convert)
        inputs.append(message_input(name, params.topic(f"low_dim.{name}.topic"), msg_type, convert,
                                    f"low_dim.{name}.type"))
    return inputs


def _picked(params: NodeParameters, name: str, size: int, convert: Callable) -> Callable:
    """`convert` followed by the pick of `low_dim.<name>.indices` (unset: every entry)."""
    params.declare(f"low_dim.{name}.indices", Parameter.Type.INTEGER_ARRAY,
                   f"pick these {size} entries of the message's vector; unset = all")
    pick = params.value(f"low_dim.{name}.indices")
    if not pick:
        return convert
    if len(pick) != size:
        raise ConfigError(f"`low_dim.{name}.indices` has {len(pick)} entries {pick}; the checkpoint's "
                         f"low-dim input `{name}` has {size} values: give {size} indices, or leave it "
                         "unset when the message carries exactly those values")

    def picked(msg):
        values, stamp = convert(msg)
        if max(pick) >= len(values) or min(pick) < -len(values):
            raise ValueError(f"`low_dim.{name}.indices` {pick} out of range for {len(values)} values")
        return values[pick], stamp
    return picked
