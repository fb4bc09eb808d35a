"""Message converters: one edge-case table per message type (encodings, padding, joint order, stamps)."""
import numpy as np
import pytest

pytest.importorskip("rclpy")
cv2 = pytest.importorskip("cv2")

from builtin_interfaces.msg import Duration, Time  # noqa: E402
from sensor_msgs.msg import CompressedImage, Image, JointState  # noqa: E402
from std_msgs.msg import Float64MultiArray  # noqa: E402
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint  # noqa: E402

from vqbet_ros.nodes import msg_convert  # noqa: E402

RNG = np.random.default_rng(0)
RGB = RNG.integers(0, 256, size=(5, 7, 3), dtype=np.uint8)
GREY = RNG.integers(0, 256, size=(5, 7), dtype=np.uint8)


def _image(pixels: np.ndarray, encoding: str, pad: int = 0, stamp=(12, 500_000_000)) -> Image:
    """Build an Image whose rows are `pad` bytes longer than needed (step padding)."""
    h, w = pixels.shape[:2]
    flat = pixels.reshape(h, -1)
    padded = np.concatenate([flat, np.full((h, pad), 7, np.uint8)], axis=1)
    msg = Image(height=h, width=w, encoding=encoding, step=padded.shape[1])
    msg.data = padded.tobytes()
    msg.header.stamp = Time(sec=stamp[0], nanosec=stamp[1])
    return msg


@pytest.mark.parametrize(
    "encoding, pixels, pad",
    [
        ("rgb8", RGB, 0),
        ("rgb8", RGB, 3),
        ("bgr8", RGB[:, :, ::-1], 0),
        ("bgr8", RGB[:, :, ::-1], 5),
        ("rgba8", np.concatenate([RGB, np.full((5, 7, 1), 255, np.uint8)], axis=2), 0),
        ("bgra8", np.concatenate([RGB[:, :, ::-1], np.zeros((5, 7, 1), np.uint8)], axis=2), 4),
        ("mono8", GREY, 0),
        ("mono8", GREY, 1),
    ],
)
def test_image_to_rgb_decodes_encoding_and_padding(encoding, pixels, pad):
    rgb, stamp = msg_convert.image_to_rgb(_image(pixels, encoding, pad))
    expected = np.repeat(GREY[:, :, None], 3, axis=2) if encoding == "mono8" else RGB
    assert rgb.dtype == np.uint8 and rgb.shape == (5, 7, 3)
    np.testing.assert_array_equal(rgb, expected)
    assert stamp == pytest.approx(12.5)


@pytest.mark.parametrize(
    "mutate, match",
    [
        (lambda m: setattr(m, "encoding", "16UC1"), "supported"),
        (lambda m: setattr(m, "step", 3), "step"),
        (lambda m: setattr(m, "data", bytes(10)), "bytes"),
        (lambda m: setattr(m, "height", 0), "size"),
    ],
)
def test_image_to_rgb_refuses_bad_message_naming_field(mutate, match):
    msg = _image(RGB, "rgb8")
    mutate(msg)
    with pytest.raises(ValueError, match=match):
        msg_convert.image_to_rgb(msg)


def test_image_to_rgb_returns_copy_not_view():
    msg = _image(RGB, "rgb8")
    rgb, _ = msg_convert.image_to_rgb(msg)
    rgb[:] = 0
    again, _ = msg_convert.image_to_rgb(msg)
    np.testing.assert_array_equal(again, RGB)


def _compressed(pixels_bgr: np.ndarray, ext: str) -> CompressedImage:
    ok, buf = cv2.imencode(ext, pixels_bgr)
    assert ok
    msg = CompressedImage(format=f"bgr8; {ext[1:]} compressed bgr8")
    msg.data = buf.tobytes()
    msg.header.stamp = Time(sec=3, nanosec=0)
    return msg


@pytest.mark.parametrize(
    "ext, pixels_bgr, expected, exact",
    [
        (".png", RGB[:, :, ::-1].copy(), RGB, True),
        (".png", GREY, np.repeat(GREY[:, :, None], 3, axis=2), True),
        (".jpg", np.full((16, 16, 3), (10, 120, 240), np.uint8), np.full((16, 16, 3), (240, 120, 10), np.uint8), False),
    ],
)
def test_compressed_image_to_rgb_decodes_png_and_jpeg_to_rgb(ext, pixels_bgr, expected, exact):
    rgb, stamp = msg_convert.compressed_image_to_rgb(_compressed(pixels_bgr, ext))
    assert rgb.dtype == np.uint8 and rgb.shape == expected.shape
    if exact:
        np.testing.assert_array_equal(rgb, expected)
    else:  # JPEG is lossy; a flat colour survives within a few levels, in RGB order
        assert np.abs(rgb.astype(int) - expected).max() <= 4
    assert stamp == 3.0


@pytest.mark.parametrize("payload", [b"", b"not an image at all"])
def test_compressed_image_to_rgb_refuses_undecodable_data(payload):
    msg = CompressedImage(format="jpeg")
    msg.data = payload
    with pytest.raises(ValueError, match="CompressedImage.data"):
        msg_convert.compressed_image_to_rgb(msg)


@pytest.mark.parametrize(
    "names, positions, wanted, expected",
    [
        (["a", "b", "c"], [1.0, 2.0, 3.0], ["a", "b", "c"], [1.0, 2.0, 3.0]),
        (["c", "a", "b"], [3.0, 1.0, 2.0], ["a", "b", "c"], [1.0, 2.0, 3.0]),  # publisher order differs
        (["a", "x", "b"], [1.0, 9.0, 2.0], ["b", "a"], [2.0, 1.0]),  # extra joints ignored
    ],
)
def test_joint_state_to_array_orders_by_joint_names(names, positions, wanted, expected):
    msg = JointState(name=names, position=positions)
    msg.header.stamp = Time(sec=1, nanosec=250_000_000)
    values, stamp = msg_convert.joint_state_to_array(msg, wanted)
    np.testing.assert_array_equal(values, expected)
    assert values.dtype == np.float64 and stamp == 1.25


def test_joint_state_to_array_names_missing_joint():
    msg = JointState(name=["a", "b"], position=[1.0, 2.0])
    with pytest.raises(ValueError, match=r"no joint\(s\) \['wrist'\]"):
        msg_convert.joint_state_to_array(msg, ["a", "wrist"])


def test_joint_state_to_array_refuses_a_wanted_joint_named_twice():
    msg = JointState(name=["a", "b", "a", "x", "x"], position=[1.0, 2.0, 3.0, 4.0, 5.0])
    with pytest.raises(ValueError, match=r"names joint\(s\) \['a'\] more than once"):
        msg_convert.joint_state_to_array(msg, ["a", "b"])
    assert msg_convert.joint_state_to_array(msg, ["b"])[0].tolist() == [2.0]  # `x` is not read: no ambiguity


def test_joint_state_to_array_refuses_short_position():
    msg = JointState(name=["a", "b"], position=[1.0])
    with pytest.raises(ValueError, match="1 values for 2 joint names"):
        msg_convert.joint_state_to_array(msg, ["a", "b"])


def test_joint_state_to_array_zero_stamp_is_none():
    values, stamp = msg_convert.joint_state_to_array(JointState(name=["a"], position=[0.5]), ["a"])
    assert stamp is None and values.tolist() == [0.5]


def test_joint_trajectory_to_array_takes_first_point_in_joint_order():
    msg = JointTrajectory(joint_names=["b", "a"])
    msg.points = [JointTrajectoryPoint(positions=[2.0, 1.0]), JointTrajectoryPoint(positions=[20.0, 10.0])]
    values, stamp = msg_convert.joint_trajectory_to_array(msg, ["a", "b"])
    np.testing.assert_array_equal(values, [1.0, 2.0])
    assert stamp is None


def test_joint_trajectory_to_array_refuses_empty_points():
    with pytest.raises(ValueError, match="points` is empty"):
        msg_convert.joint_trajectory_to_array(JointTrajectory(joint_names=["a"]), ["a"])


def test_joint_trajectory_to_points_gives_stamp_offsets_and_every_point_in_joint_order():
    msg = JointTrajectory(joint_names=["b", "a"])
    msg.header.stamp = Time(sec=3, nanosec=500_000_000)
    msg.points = [JointTrajectoryPoint(positions=[2.0, 1.0], time_from_start=Duration(nanosec=100_000_000)),
                  JointTrajectoryPoint(positions=[20.0, 10.0], time_from_start=Duration(sec=1))]
    start_s, offsets, positions = msg_convert.joint_trajectory_to_points(msg, ["a", "b"])
    assert start_s == 3.5
    np.testing.assert_allclose(offsets, [0.1, 1.0])
    np.testing.assert_array_equal(positions, [[1.0, 2.0], [10.0, 20.0]])
    with pytest.raises(ValueError, match=r"points\[0\].positions` has no joint\(s\) \[.c.\]"):
        msg_convert.joint_trajectory_to_points(msg, ["a", "c"])


def test_float64_multiarray_to_array_checks_length():
    values, stamp = msg_convert.float64_multiarray_to_array(Float64MultiArray(data=[1.0, 2.0]), ["a", "b"])
    np.testing.assert_array_equal(values, [1.0, 2.0])
    assert stamp is None
    with pytest.raises(ValueError, match="has 2 values; expected 3"):
        msg_convert.float64_multiarray_to_array(Float64MultiArray(data=[1.0, 2.0]), ["a", "b", "c"])


@pytest.mark.parametrize("sec, nanosec, expected", [(0, 0, None), (0, 1, 1e-9), (5, 999_999_999, 5.999999999)])
def test_stamp_to_s_converts_and_treats_zero_as_unset(sec, nanosec, expected):
    result = msg_convert.stamp_to_s(Time(sec=sec, nanosec=nanosec))
    assert result == (None if expected is None else pytest.approx(expected, abs=1e-12))


def test_image_to_rgb_reads_other_encodings_through_cv_bridge(monkeypatch):
    """An encoding the NumPy path does not read goes to cv_bridge when it is installed (the recorder and the
    policy node both call `image_to_rgb`, so a camera is recordable exactly when it is deployable)."""
    class FakeBridge:
        def imgmsg_to_cv2(self, msg, desired_encoding):
            assert desired_encoding == "rgb8"
            return RGB

    msg = _image(GREY.astype(np.uint16), "16UC1")
    monkeypatch.setattr(msg_convert, "_CvBridge", None)
    with pytest.raises(ValueError, match="'16UC1', which this converter does not read"):
        msg_convert.image_to_rgb(msg)
    monkeypatch.setattr(msg_convert, "_CvBridge", FakeBridge)
    rgb, stamp = msg_convert.image_to_rgb(msg)
    np.testing.assert_array_equal(rgb, RGB)
    assert stamp == pytest.approx(12.5)


def test_stamps_headerless_message_takes_newest_joint_state_stamp():
    now = {"s": 100.0}
    stamps = msg_convert.Stamps(lambda: now["s"])
    assert stamps.headerless(None) == 100.0  # no joint state yet: arrival time
    assert stamps.joint_state(12.5) == 12.5
    now["s"] = 100.1
    assert stamps.headerless(None) == 12.5  # not the arrival time
    assert stamps.joint_state(12.4) == 12.4  # an older joint state does not move the reference back
    assert stamps.headerless(None) == 12.5
    stamps.reset()
    assert stamps.headerless(None) == 100.1


def test_stamps_zero_header_stamp_is_arrival_time():
    stamps = msg_convert.Stamps(lambda: 7.0)
    assert stamps.stamped(None) == 7.0 and stamps.stamped(3.25) == 3.25
    assert stamps.joint_state(None) == 7.0 and stamps.headerless(None) == 7.0


def png_bomb(width: int, height: int) -> bytes:
    """A valid grey PNG of `width` x `height` zeros: a few kB that decode to width x height bytes."""
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    packer = zlib.compressobj(9)
    row = bytes(width + 1)  # filter byte + pixels
    body = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit greyscale
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b"")


def test_compressed_image_to_rgb_refuses_oversized_image_from_header_before_decoding():
    import time

    msg = CompressedImage(format="png", data=png_bomb(12000, 12000))
    t0 = time.perf_counter()
    with pytest.raises(ValueError, match="12000x12000"):
        msg_convert.compressed_image_to_rgb(msg)
    assert time.perf_counter() - t0 < 0.5  # decoding it would take seconds and ~430 MB


def test_image_to_rgb_refuses_oversized_raw_image():
    msg = Image(height=5000, width=5000, encoding="mono8", step=5000, data=bytes(16))
    with pytest.raises(ValueError, match="5000x5000"):
        msg_convert.image_to_rgb(msg)


def test_joint_state_to_array_refuses_duplicate_joint_names():
    msg = JointState(name=["a", "b", "a"], position=[1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match=r"\['a'\] more than once"):
        msg_convert.joint_state_to_array(msg, ["a", "b"])
