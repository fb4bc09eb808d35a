"""Frames to the checkpoint's shape: centre crop to aspect, resize, channels first."""
import numpy as np
import pytest

from vqbet_ros.runtime.images import centre_crop_to_aspect, fit_image


def test_fit_image_resizes_to_checkpoint_shape_channels_first():
    out = fit_image(np.zeros((480, 640, 3), np.uint8), [3, 96, 96])
    assert out.shape == (3, 96, 96) and out.dtype == np.uint8


def test_fit_image_keeps_channel_order():
    rgb = np.zeros((8, 8, 3), np.uint8)
    rgb[..., 0] = 200  # red
    out = fit_image(rgb, [3, 4, 4])
    assert out[0].min() == 200 and out[1].max() == 0 and out[2].max() == 0


def test_centre_crop_keeps_middle_of_wide_frame():
    frame = np.zeros((4, 8, 3), np.uint8)
    frame[:, 2:6] = 255
    assert centre_crop_to_aspect(frame, 1, 1).min() == 255


def test_fit_image_same_size_is_unchanged():
    rgb = np.random.default_rng(0).integers(0, 255, (6, 5, 3), dtype=np.uint8)
    np.testing.assert_array_equal(fit_image(rgb, [3, 6, 5]), rgb.transpose(2, 0, 1))


def test_fit_image_without_resize_refuses_other_size_naming_both():
    with pytest.raises(ValueError, match="64x48.*32x32"):
        fit_image(np.zeros((48, 64, 3), np.uint8), [3, 32, 32], resize=False)


@pytest.mark.parametrize("ext", [".png", ".jpg"])
def test_encoded_image_size_reads_width_height_from_header(ext):
    cv2 = pytest.importorskip("cv2")
    from vqbet_ros.runtime.images import encoded_image_size

    data = cv2.imencode(ext, np.zeros((37, 53, 3), np.uint8))[1].tobytes()
    assert encoded_image_size(data) == (53, 37)
    assert encoded_image_size(data[:10]) is None  # too short to read: left to the decoder
    assert encoded_image_size(b"GIF89a....") is None
