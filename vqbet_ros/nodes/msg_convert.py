"""ROS 2 message -> NumPy converters, one function per message type.

Every converter returns `(array, stamp_s)`:
- `array` is a fresh NumPy array the caller owns (never a view into the message buffer);
- `stamp_s` is `header.stamp` in float seconds, or `None` when the message carries no usable stamp (no header,
  or a zero stamp, which ROS uses for "now"). `Stamps` turns that into a stamp on the node clock, with the one
  rule per message type that the recorder and the policy node share (docs/ros2.md §3).

Images come out as RGB uint8 (H, W, 3) whatever the wire encoding (cv_bridge, when installed, reads the
encodings the NumPy path does not); joint vectors come out as float64 in the order of the `joint_names` the
caller asks for, so a publisher's joint order never leaks into a dataset or a policy. Errors name the message
field, the value received and what to change.
"""
from __future__ import annotations

import threading
from typing import Callable, Sequence

import numpy as np

from vqbet_ros.runtime.images import encoded_image_size

try:  # cv_bridge is optional: used when a sourced ROS 2 install provides it, never required.
    from cv_bridge import CvBridge as _CvBridge
except ImportError:  # pragma: no cover - depends on the install
    _CvBridge = None

try:
    import cv2 as _cv2
except ImportError:  # pragma: no cover - depends on the install
    _cv2 = None

# encoding -> (channels, index of R, G, B in the channel axis); mono has one channel, replicated to RGB.
_RAW_ENCODINGS = {
    "rgb8": (3, (0, 1, 2)),
    "bgr8": (3, (2, 1, 0)),
    "rgba8": (4, (0, 1, 2)),
    "bgra8": (4, (2, 1, 0)),
    "mono8": (1, (0, 0, 0)),
    "8uc1": (1, (0, 0, 0)),
    "8uc3": (3, (2, 1, 0)),  # OpenCV convention: an untyped 3-channel 8-bit image is BGR
}
SUPPORTED_IMAGE_ENCODINGS = ("rgb8", "bgr8", "rgba8", "bgra8", "mono8")
# Larger frames are refused before any pixel is converted or decoded: a 4K camera fits; a small PNG that
# decodes to 12000x12000 would otherwise cost seconds and ~430 MB on the thread that also serves services.
MAX_IMAGE_PIXELS = 4096 * 4096


def _check_image_size(width: int, height: int, what: str) -> None:
    if width * height > MAX_IMAGE_PIXELS:
        raise ValueError(f"`{what}` is {width}x{height} pixels, more than the {MAX_IMAGE_PIXELS} this converter "
                         "decodes; publish a smaller image (the policy resizes to a few hundred pixels anyway)")


def stamp_to_s(stamp) -> float | None:
    """`builtin_interfaces/Time` -> float seconds; `None` for a zero stamp (ROS "now" / unset)."""
    if stamp.sec == 0 and stamp.nanosec == 0:
        return None
    return stamp.sec + stamp.nanosec * 1e-9


def image_to_rgb(msg) -> tuple[np.ndarray, float | None]:
    """`sensor_msgs/Image` -> RGB uint8 (H, W, 3).

    Reads rgb8, bgr8, rgba8, bgra8 and mono8 itself (alpha dropped, mono replicated; row padding, `step`
    larger than width x channels, is respected); any other encoding (16-bit, Bayer, ...) goes through
    cv_bridge when it is installed.
    """
    encoding = msg.encoding.lower()
    if encoding not in _RAW_ENCODINGS:
        rgb = _cv_bridge_rgb(msg)
        if rgb is None:
            raise ValueError(
                f"`Image.encoding` is {msg.encoding!r}, which this converter does not read"
                f"{'' if _CvBridge is None else ' (nor cv_bridge into rgb8)'}; supported: "
                f"{list(SUPPORTED_IMAGE_ENCODINGS)}. Configure the camera driver for rgb8/bgr8 or use its "
                f"compressed topic."
            )
        return rgb, stamp_to_s(msg.header.stamp)
    channels, order = _RAW_ENCODINGS[encoding]
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    row_bytes = width * channels
    if height <= 0 or width <= 0:
        raise ValueError(f"`Image` has size {width}x{height}; expected a non-empty image")
    _check_image_size(width, height, "Image")
    if step < row_bytes:
        raise ValueError(f"`Image.step` is {step}, smaller than width x channels = {row_bytes} ({msg.encoding})")
    try:  # bytes / array.array('B') from rclpy expose the buffer protocol: no copy
        buffer = np.frombuffer(msg.data, np.uint8)
    except TypeError:  # a plain list
        buffer = np.asarray(msg.data, dtype=np.uint8)
    if buffer.size < step * height:
        raise ValueError(
            f"`Image.data` has {buffer.size} bytes; expected step x height = {step} x {height} = {step * height}"
        )
    rows = buffer[: step * height].reshape(height, step)[:, :row_bytes].reshape(height, width, channels)
    if channels == 1:
        rgb = np.repeat(rows, 3, axis=2)
    elif order == (0, 1, 2):
        rgb = rows[:, :, :3].copy()  # a copy even when contiguous: the caller must not alias the message
    else:
        rgb = rows[:, :, list(order)]  # fancy indexing copies
    return rgb, stamp_to_s(msg.header.stamp)


def _cv_bridge_rgb(msg) -> np.ndarray | None:
    """cv_bridge's conversion of an `Image` to rgb8; None without cv_bridge or when it cannot convert."""
    if _CvBridge is None:
        return None
    try:  # pragma: no cover - only with a sourced ROS 2 that ships cv_bridge
        rgb = np.asarray(_CvBridge().imgmsg_to_cv2(msg, desired_encoding="rgb8"))
    except Exception:  # noqa: BLE001 - cv_bridge raises its own CvBridgeError and cv2 errors
        return None
    return rgb if rgb.dtype == np.uint8 and rgb.ndim == 3 and rgb.shape[2] == 3 else None


def compressed_image_to_rgb(msg) -> tuple[np.ndarray, float | None]:
    """`sensor_msgs/CompressedImage` (JPEG or PNG) -> RGB uint8 (H, W, 3).

    Uses cv_bridge when it is importable, else OpenCV, else Pillow. Grey images are replicated to RGB.
    """
    data = bytes(msg.data)
    if not data:
        raise ValueError(f"`CompressedImage.data` is empty (format {msg.format!r}); nothing to decode")
    size = encoded_image_size(data)  # from the header, before decoding
    if size is not None:
        _check_image_size(*size, f"CompressedImage ({msg.format!r})")
    if _CvBridge is not None:  # pragma: no cover - only with a sourced ROS 2 that ships cv_bridge
        rgb = _CvBridge().compressed_imgmsg_to_cv2(msg, desired_encoding="rgb8")
        return _as_rgb(np.asarray(rgb), msg.format), stamp_to_s(msg.header.stamp)
    if _cv2 is not None:
        decoded = _cv2.imdecode(np.frombuffer(data, np.uint8), _cv2.IMREAD_UNCHANGED)
        if decoded is None:
            raise ValueError(_undecodable(msg.format))
        if decoded.dtype != np.uint8:
            raise ValueError(f"`CompressedImage` ({msg.format!r}) decodes to {decoded.dtype}; expected 8-bit")
        if decoded.ndim == 3 and decoded.shape[2] == 4:
            decoded = _cv2.cvtColor(decoded, _cv2.COLOR_BGRA2RGB)
        elif decoded.ndim == 3:
            decoded = _cv2.cvtColor(decoded, _cv2.COLOR_BGR2RGB)
        return _as_rgb(decoded, msg.format), stamp_to_s(msg.header.stamp)
    import io

    from PIL import Image as _PILImage

    try:
        with _PILImage.open(io.BytesIO(data)) as pil:
            rgb = np.asarray(pil.convert("RGB"))
    except Exception as err:  # PIL raises several types for corrupt data
        raise ValueError(_undecodable(msg.format)) from err
    return rgb, stamp_to_s(msg.header.stamp)


def _undecodable(fmt: str) -> str:
    return (
        f"`CompressedImage.data` could not be decoded (format {fmt!r}); only JPEG and PNG are read. "
        "Check the topic is an image_transport `compressed` topic, not `compressedDepth` or theora."
    )


def _as_rgb(image: np.ndarray, fmt: str) -> np.ndarray:
    if image.ndim == 2:
        return np.repeat(image[:, :, None], 3, axis=2)
    if image.ndim == 3 and image.shape[2] == 3:
        return np.ascontiguousarray(image)
    raise ValueError(f"`CompressedImage` ({fmt!r}) decoded to shape {image.shape}; expected (H, W) or (H, W, 3)")


def _reorder(names: Sequence[str], values: Sequence[float], joint_names: Sequence[str], what: str) -> np.ndarray:
    """Pick `values` for `joint_names` from a message whose joints are `names` (any order, maybe more)."""
    names = list(names)
    if len(values) < len(names):
        raise ValueError(f"`{what}` has {len(values)} values for {len(names)} joint names {names}")
    twice = sorted({j for j in joint_names if names.count(j) > 1})
    if twice:
        raise ValueError(f"`{what}`: the message names joint(s) {twice} more than once ({names}), so which value "
                         "is meant is ambiguous; fix the publisher (or remap to a topic without duplicates)")
    index = {name: i for i, name in enumerate(names)}  # a joint not asked for may repeat: it is never read
    missing = [j for j in joint_names if j not in index]
    if missing:
        raise ValueError(
            f"`{what}` has no joint(s) {missing}; it has {names}. Fix the `joint_names` parameter or remap the "
            "topic to one that carries these joints."
        )
    return np.array([values[index[j]] for j in joint_names], dtype=np.float64)


def joint_state_to_array(
    msg, joint_names: Sequence[str], field: str = "position"
) -> tuple[np.ndarray, float | None]:
    """`sensor_msgs/JointState` -> float64 (len(joint_names),) of `field` (position, velocity or effort)."""
    if field not in ("position", "velocity", "effort"):
        raise ValueError(f"`field` is {field!r}; expected 'position', 'velocity' or 'effort'")
    values = getattr(msg, field)
    return _reorder(msg.name, values, joint_names, f"JointState.{field}"), stamp_to_s(msg.header.stamp)


def joint_trajectory_to_array(msg, joint_names: Sequence[str]) -> tuple[np.ndarray, float | None]:
    """`trajectory_msgs/JointTrajectory` -> positions of its FIRST point, float64 (len(joint_names),).

    A teleop leader usually publishes one point per message (the command for now); later points are ignored.
    """
    if len(msg.points) == 0:
        raise ValueError("`JointTrajectory.points` is empty; expected at least one point (the command)")
    positions = msg.points[0].positions
    return _reorder(msg.joint_names, positions, joint_names, "JointTrajectory.points[0].positions"), stamp_to_s(
        msg.header.stamp
    )


def joint_trajectory_to_points(
    msg, joint_names: Sequence[str]
) -> tuple[float | None, np.ndarray, np.ndarray]:
    """`trajectory_msgs/JointTrajectory` -> (start stamp in s or None for "now", time_from_start of each point
    (N,) in s, positions (N, len(joint_names))): the whole trajectory, for a controller that executes it."""
    offsets = np.array([p.time_from_start.sec + p.time_from_start.nanosec * 1e-9 for p in msg.points])
    positions = np.array([_reorder(msg.joint_names, p.positions, joint_names,
                                   f"JointTrajectory.points[{k}].positions") for k, p in enumerate(msg.points)],
                         dtype=np.float64).reshape(len(msg.points), len(joint_names))
    return stamp_to_s(msg.header.stamp), offsets, positions


def float64_multiarray_to_array(msg, joint_names: Sequence[str] | None = None) -> tuple[np.ndarray, None]:
    """`std_msgs/Float64MultiArray` -> float64 (N,); it has no header, so the stamp is always `None`.

    The order is the publisher's (a forward controller's `joints` parameter); with `joint_names` given, only
    the length can be checked.
    """
    values = np.array(msg.data, dtype=np.float64)
    if joint_names is not None and values.shape[0] != len(joint_names):
        raise ValueError(
            f"`Float64MultiArray.data` has {values.shape[0]} values; expected {len(joint_names)} "
            f"(one per joint in {list(joint_names)}, in that order)"
        )
    return values, None


def pose_stamped_to_array(msg) -> tuple[np.ndarray, float | None]:
    """`geometry_msgs/PoseStamped` -> float64 [x, y, z, qx, qy, qz, qw] (an object pose from perception)."""
    p, q = msg.pose.position, msg.pose.orientation
    return np.array([p.x, p.y, p.z, q.x, q.y, q.z, q.w], dtype=np.float64), stamp_to_s(msg.header.stamp)


class Stamps:
    """The one stamping rule per message type, shared by every node (docs/ros2.md §3). Thread-safe.

    - A message with a header (`Image`, `CompressedImage`, `JointState`, `JointTrajectory`, `PoseStamped`):
      its `header.stamp`; a zero stamp means "now", the node clock at arrival.
    - `Float64MultiArray` has no header. It describes the robot's latest observation, so it takes the stamp of
      the newest joint state the node has received (`joint_state` below), or the node clock at arrival before
      any. Arrival time alone is a step late on a loaded machine and a step early in a lockstep simulation
      (the PushT sim's fast mode delivers a step's messages before advancing /clock), so a dataset and a
      deployment would line the stream up differently.

        stamps = Stamps(node_now_s)
        q, stamp = joint_state_to_array(msg, names); stamp_s = stamps.joint_state(stamp)
        values, stamp = float64_multiarray_to_array(msg); stamp_s = stamps.headerless(stamp)

    For the rule to hold for the messages of one instant, the node must handle the joint-state subscription
    and the header-less ones one at a time in creation order, i.e. on a single-threaded executor: a
    multi-threaded one may start two waiting callbacks in either order, even within one mutually exclusive
    callback group.
    """

    def __init__(self, now_s: Callable[[], float]):
        self._now_s = now_s
        self._joint_state_s: float | None = None
        self._lock = threading.Lock()

    def stamped(self, stamp_s: float | None) -> float:
        """A message with a header: its stamp, or the node clock for a zero stamp."""
        return self._now_s() if stamp_s is None else stamp_s

    def joint_state(self, stamp_s: float | None) -> float:
        """A joint state of the robot (the reference of header-less messages): its stamp, remembered."""
        stamp_s = self.stamped(stamp_s)
        with self._lock:
            if self._joint_state_s is None or stamp_s > self._joint_state_s:
                self._joint_state_s = stamp_s
        return stamp_s

    def headerless(self, stamp_s: None = None) -> float:
        """A `Float64MultiArray`: the newest joint-state stamp, or the node clock before the first one.
        (`stamp_s`, always None for such a message, gives the three rules one signature.)"""
        with self._lock:
            newest = self._joint_state_s
        return self._now_s() if newest is None else newest

    def reset(self) -> None:
        """Forget the newest joint state (new subscriptions, e.g. after a lifecycle cleanup)."""
        with self._lock:
            self._joint_state_s = None
