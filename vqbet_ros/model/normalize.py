"""Min-max normalisation of state, low-dim observations and actions to [-1, 1] (docs/vqbet.md §7, LeRobot MIN_MAX).

Lives outside every nn.Module: the policy sees normalized tensors; the runtime and the trainer call this.
Images are not normalized here (the vision encoder takes uint8, LeRobot VISUAL: IDENTITY).
"""
from __future__ import annotations

from typing import TypeVar

import numpy as np
import torch

from vqbet_ros import constants

ArrayT = TypeVar("ArrayT", np.ndarray, torch.Tensor)

# Spans below this count as constant: they map to 0 and back to their value instead of dividing by ~0.
_MIN_SPAN = 1e-8


class Normalizer:
    """`stats` maps a dataset key to at least {"min", "max"} arrays of the feature's last dimension."""

    def __init__(self, stats: dict[str, dict[str, np.ndarray]]):
        self.stats = stats
        self._bounds: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for key, entry in stats.items():
            if key.startswith(constants.IMAGES_PREFIX) or "min" not in entry or "max" not in entry:
                continue
            lo = np.asarray(entry["min"], dtype=np.float64)
            hi = np.asarray(entry["max"], dtype=np.float64)
            if lo.shape != hi.shape:
                raise ValueError(f"stats for `{key}`: min shape {lo.shape} != max shape {hi.shape}")
            if np.any(hi < lo):
                raise ValueError(f"stats for `{key}`: max < min in some dimension (min {lo}, max {hi})")
            self._bounds[key] = (lo, hi)
        self._torch_cache: dict[tuple, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}

    def keys(self) -> list[str]:
        return list(self._bounds)

    def __contains__(self, key: str) -> bool:
        return key in self._bounds

    def _params(self, key: str, x: ArrayT) -> tuple[ArrayT, ArrayT, ArrayT]:
        """(low, span with constants replaced by 1, constant mask) in x's array type, dtype and device."""
        if key not in self._bounds:
            what = "images are not normalized (the vision encoder takes uint8)" \
                if key.startswith(constants.IMAGES_PREFIX) else f"known keys: {sorted(self._bounds)}"
            raise KeyError(f"no min/max stats for `{key}`; {what}")
        lo, hi = self._bounds[key]
        if lo.ndim and tuple(x.shape[-lo.ndim:]) != lo.shape:
            raise ValueError(f"`{key}`: last dimension(s) {tuple(x.shape)} do not match the stats shape {lo.shape}")
        span = hi - lo
        const = span < _MIN_SPAN
        span = np.where(const, 1.0, span)
        if isinstance(x, torch.Tensor):
            dtype = x.dtype if x.is_floating_point() else torch.float32
            cache_key = (key, dtype, x.device)
            if cache_key not in self._torch_cache:  # one host-to-device copy per key, dtype and device
                as_t = lambda a: torch.as_tensor(a, dtype=dtype, device=x.device)  # noqa: E731
                self._torch_cache[cache_key] = (as_t(lo), as_t(span), torch.as_tensor(const, device=x.device))
            return self._torch_cache[cache_key]
        dtype = x.dtype if np.issubdtype(x.dtype, np.floating) else np.float32
        return lo.astype(dtype), span.astype(dtype), const

    def normalize(self, key: str, x: ArrayT) -> ArrayT:
        """x (..., n) in data units -> [-1, 1]; constant dimensions -> 0."""
        x = x if isinstance(x, torch.Tensor) else np.asarray(x)
        lo, span, const = self._params(key, x)
        y = (x - lo) / span * 2 - 1
        return _where(const, y * 0, y)

    def unnormalize(self, key: str, y: ArrayT) -> ArrayT:
        """y (..., n) in [-1, 1] -> data units; constant dimensions -> their value."""
        y = y if isinstance(y, torch.Tensor) else np.asarray(y)
        lo, span, const = self._params(key, y)
        x = (y + 1) / 2 * span + lo
        return _where(const, lo + x * 0, x)


def _where(cond, a, b):
    if isinstance(a, torch.Tensor):
        return torch.where(cond, a, b)
    return np.where(cond, a, b).astype(a.dtype)
