"""Camera frames to the checkpoint's image shape: centre crop to the aspect ratio, resize, channels first.

A frame arrives as an RGB uint8 (H, W, 3) array (`nodes/msg_convert.py` has already decoded the wire
encoding; no message type here). The result is what the vision encoder takes: uint8 (3, H', W') with
(H', W') from the checkpoint's `spec.cameras[cam]`. Resizing uses OpenCV's area filter when OpenCV is importable, else torch's
antialiased bilinear filter (same result up to rounding).
"""
from __future__ import annotations

import numpy as np

try:  # optional: faster and the usual choice for downscaling
    import cv2
except ImportError:  # pragma: no cover - exercised only where OpenCV is missing
    cv2 = None


def centre_crop_to_aspect(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Largest centred (H, W) window of `image` with the aspect ratio height:width."""
    h, w = image.shape[:2]
    if h * width > w * height:  # too tall
        new_h = max(1, round(w * height / width))
        top = (h - new_h) // 2
        return image[top:top + new_h]
    new_w = max(1, round(h * width / height))
    left = (w - new_w) // 2
    return image[:, left:left + new_w]


def _resize(image: np.ndarray, height: int, width: int) -> np.ndarray:
    if cv2 is not None:
        return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
    import torch
    import torch.nn.functional as F

    x = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].float()  # (1, 3, H, W)
    y = F.interpolate(x, size=(height, width), mode="bilinear", antialias=True, align_corners=False)
    return y[0].permute(1, 2, 0).round().clamp(0, 255).to(torch.uint8).numpy()


def fit_image(rgb: np.ndarray, shape: list[int] | tuple[int, ...], resize: bool = True) -> np.ndarray:
    """RGB uint8 (H, W, 3) camera frame -> uint8 (3, H', W') with `shape` = (3, H', W') from the checkpoint.

    With `resize`, a frame of another size is centre-cropped to the target aspect ratio, then resized; without,
    it must already have the checkpoint's size. Raises ValueError naming the sizes.
    """
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3 or 0 in rgb.shape:
        raise ValueError(f"expected an RGB uint8 (H, W, 3) frame, got {rgb.dtype} {rgb.shape}")
    _, height, width = shape
    if rgb.shape[:2] != (height, width):
        if not resize:
            raise ValueError(
                f"frame is {rgb.shape[1]}x{rgb.shape[0]} (WxH), the checkpoint expects {width}x{height}; "
                f"set `resize_images: true` or publish that size"
            )
        rgb = _resize(centre_crop_to_aspect(rgb, height, width), height, width)
    return np.ascontiguousarray(rgb.transpose(2, 0, 1))  # (H, W, 3) -> (3, H, W)
