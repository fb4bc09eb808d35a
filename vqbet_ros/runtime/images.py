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


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# JPEG start-of-frame markers (baseline, progressive, lossless, arithmetic); DHT/JPG/DAC (C4, C8, CC) are not.
_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def encoded_image_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a PNG or JPEG header without decoding the pixels; None for another format or a
    header too short to read (the decoder then refuses it)."""
    data = memoryview(data)
    if bytes(data[:8]) == _PNG_SIGNATURE and len(data) >= 24 and bytes(data[12:16]) == b"IHDR":
        return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    if bytes(data[:2]) != b"\xff\xd8":
        return None
    i = 2
    while i + 4 <= len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if 0xD0 <= marker <= 0xD9 or marker == 0x01:  # markers without a length
            i += 2
            continue
        length = int.from_bytes(data[i + 2:i + 4], "big")
        if marker in _JPEG_SOF:
            if i + 9 > len(data):
                return None
            return int.from_bytes(data[i + 7:i + 9], "big"), int.from_bytes(data[i + 5:i + 7], "big")
        i += 2 + length
    return None
