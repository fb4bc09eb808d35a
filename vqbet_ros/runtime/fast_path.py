"""Optimized inference (torch.compile, inductor freezing, bf16 autocast) behind a parity gate.

`InferenceParts` holds the callables a control tick runs (the observation encoder's `encode_camera` per camera
and `encode_vector`, the policy's `predict_chunk`) twice: eager fp32, the reference, and the optimized path the `RuntimeConfig` asks for (`compile_mode`,
`autocast`). The optimized path is used only once it has passed the gate: on the first observation with all
inputs good (`check`), both paths encode it, predict the chunk of a history of that token repeated (what the
first decision after a reset sees) with the same seeded generator, and the largest difference of the two
chunks, in normalized action units, must be within `RuntimeConfig.parity_tolerance`. Otherwise (too far,
not finite, or the optimized path raised) the runtime stays on eager fp32 for good and `state`/`reason` say
why. Real observations, not the blank warm-up inputs, because an error that matters shows on what the robot
sees: a bf16 rounding that flips a code of a trained prior is invisible on an all-black frame.

Measured on the 2-core CPU of issue 13 (image config, ResNet-18): `compile_mode: default` is slower than
eager (1.06-1.13x); `freeze` (weights folded into the graph as constants) 0.58-0.71x; `freeze` + bf16 0.48x.
"""
from __future__ import annotations

import contextlib
import functools
import logging
import math
from typing import Callable

import torch

from vqbet_ros.model.encoders import ObservationEncoder

log = logging.getLogger(__name__)

GATE_SEED = 0  # both paths sample codes from a generator seeded with this, so a sampled chunk compares too


def cpu_bf16_support() -> str | None:
    """The CPU's native bf16 instructions (`AMX` or `AVX512-BF16`), or None: emulated bf16 is slower than fp32."""
    if getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)():
        return "AMX"
    if getattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)():
        return "AVX512-BF16"
    return None


def resolve_autocast(autocast: str, device: torch.device) -> tuple[torch.dtype | None, str | None]:
    """`autocast` on `device` -> (dtype to autocast to or None, why a requested bf16 is not used or None)."""
    if autocast == "none":
        return None, None
    if device.type == "cpu" and cpu_bf16_support() is None:
        return None, "autocast bf16 not used: this CPU has neither AVX512-BF16 nor AMX (emulated bf16 is slower)"
    return torch.bfloat16, None


def _compile(fn: Callable, compile_mode: str) -> Callable:
    if compile_mode == "none":
        return fn
    if compile_mode == "freeze":
        # fallback_random: sampled codes use eager's random stream, so the gate compares like with like.
        return torch.compile(fn, options={"freezing": True, "fallback_random": True})
    return torch.compile(fn, mode=compile_mode)


def _optimized(fn: Callable, compile_mode: str, dtype: torch.dtype | None, device_type: str) -> Callable:
    """`fn` compiled and autocast, always run under inference mode (freezing needs it, and a change of grad
    mode between warm-up and ticks would recompile), returning a float32 copy of its output (CUDA-graph
    outputs are overwritten by the next replay; bf16 features would change the history's dtype)."""
    compiled = _compile(fn, compile_mode)

    def call(*args, **kwargs):
        cast = contextlib.nullcontext() if dtype is None else torch.autocast(device_type, dtype=dtype)
        with torch.inference_mode(), cast:
            return compiled(*args, **kwargs).float().clone()

    return call


class Parts:
    """One way of running the policy: one camera encoder per camera (`ObservationEncoder.encode_camera`), the
    vector encoder (`encode_vector`, or None), `predict_chunk`."""

    def __init__(self, cameras: list[Callable], vector: Callable | None, predict_chunk: Callable):
        self.cameras = cameras
        self.vector = vector
        self.predict_chunk = predict_chunk

    def token(self, images: list[torch.Tensor], vector: torch.Tensor | None) -> torch.Tensor:
        """One image (1, 3, H, W) per camera and the normalized vector (1, n) or None -> the token (1, Dt)."""
        features = [encode(image) for encode, image in zip(self.cameras, images)]
        return ObservationEncoder.assemble(features, None if self.vector is None else self.vector(vector))

    def chunk(self, images: list[torch.Tensor], vector: torch.Tensor | None, n_obs_steps: int,
              seeded: bool) -> torch.Tensor:
        """One observation -> the normalized chunk (1, W, A) predicted from a history of it repeated, codes
        sampled from `GATE_SEED`: through a generator argument when `seeded` (a runtime with `seed` >= 0), else
        through the global generator, forked so the runtime's own stream is untouched (the same call signature
        as the ticks', so the compiled path is not traced again)."""
        token = self.token(images, vector)  # (1, Dt)
        tokens = token[:, None].expand(1, n_obs_steps, -1).contiguous()  # (1, T, Dt)
        device = token.device
        if seeded:
            generator = torch.Generator(device=device).manual_seed(GATE_SEED)
            return self.predict_chunk(tokens, generator=generator).float().cpu()  # (1, W, A)
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(GATE_SEED)
            return self.predict_chunk(tokens, generator=None).float().cpu()  # (1, W, A)


class InferenceParts:
    """Eager fp32 and (when asked for) optimized parts, and the gate between them; see the module docstring.

    `state`: `eager` (no optimization asked for, or autocast unsupported and no compile), `pending` (the
    optimized path is warmed up and waits for the first observation), `accepted`, `rejected` (eager fp32 for
    good; `reason` says why). `max_difference`: the gate's largest |optimized - eager| chunk entry
    (normalized action units), None before the gate.
    """

    def __init__(self, policy, compile_mode: str, autocast: str, tolerance: float, device: torch.device):
        enc = policy.obs_encoder
        cameras = [functools.partial(enc.encode_camera, i) for i in range(len(enc.cameras))]
        vector = enc.encode_vector if enc.vector_dim else None
        self.eager = Parts(cameras, vector, policy.predict_chunk)
        self.tolerance = tolerance
        self.max_difference: float | None = None
        dtype, self._note = resolve_autocast(autocast, device)
        self.reason = self._note  # why the runtime runs what it runs, when that is not what was asked for
        if self._note is not None:
            log.warning(self._note)
        self.optimized: Parts | None = None
        self.state, self.description = "eager", "eager fp32"
        if compile_mode != "none" or dtype is not None:
            wrap = lambda f: _optimized(f, compile_mode, dtype, device.type)  # noqa: E731
            self.propose(Parts([wrap(f) for f in cameras], wrap(vector) if vector is not None else None,
                               wrap(policy.predict_chunk)),
                         ", ".join(([f"compile {compile_mode}"] if compile_mode != "none" else [])
                                   + (["autocast bf16"] if dtype is not None else [])))

    def propose(self, optimized: Parts, description: str) -> None:
        """Put `optimized` behind the gate: warmed up by `warm`, checked by `check` on the next observation."""
        self.optimized, self.description = optimized, description
        self.state, self.max_difference = "pending", None

    @property
    def active(self) -> Parts:
        return self.optimized if self.state in ("pending", "accepted") else self.eager

    # what a tick runs (engine.PolicyRuntime reads these)
    @property
    def cameras(self) -> list[Callable]:
        return self.active.cameras

    @property
    def vector(self) -> Callable | None:
        return self.active.vector

    @property
    def predict_chunk(self) -> Callable:
        return self.active.predict_chunk

    @property
    def pending(self) -> bool:
        return self.state == "pending"

    def warm(self, run: Callable[[Parts], None]) -> None:
        """Run `run` on every candidate (compiles the optimized path); an optimized path that raises is
        rejected, eager errors propagate."""
        run(self.eager)
        if self.pending:
            try:
                run(self.optimized)
            except Exception as err:  # noqa: BLE001 - any compiler failure means: stay on eager
                self._reject(f"the optimized path ({self.description}) failed at warm-up: "
                             f"{type(err).__name__}: {err}")

    def check(self, images: list[torch.Tensor], vector: torch.Tensor | None, n_obs_steps: int,
              seeded: bool) -> None:
        """The gate, on one observation (device tensors as the encoders take them); sets `state`."""
        try:
            fast = self.optimized.chunk(images, vector, n_obs_steps, seeded)
        except Exception as err:  # noqa: BLE001 - see warm
            self._reject(f"the optimized path ({self.description}) failed on the first observation: "
                         f"{type(err).__name__}: {err}")
            return
        with torch.inference_mode():
            reference = self.eager.chunk(images, vector, n_obs_steps, seeded)
        diff = (fast - reference).abs().max().item()
        self.max_difference = diff
        if not math.isfinite(diff) or diff > self.tolerance:
            self._reject(f"the optimized path ({self.description}) differs from eager fp32 by {diff:.4g} "
                         f"(normalized action units) on the first observation, more than `parity_tolerance` "
                         f"{self.tolerance:g}")
            return
        self.state = "accepted"
        self._explain(f"{self.description} within {diff:.2g} of eager fp32 on the first observation "
                      f"(tolerance {self.tolerance:g})")
        log.info("parity gate passed: %s", self.reason)

    def _reject(self, reason: str) -> None:
        self.state = "rejected"
        self._explain(reason + "; running eager fp32")
        log.warning("parity gate: %s", self.reason)

    def _explain(self, outcome: str) -> None:
        self.reason = "; ".join(text for text in (self._note, outcome) if text)
