"""The ROS-free policy runtime: inputs in, one control tick at a time, timed action chunks out.

    runtime = PolicyRuntime.from_checkpoint("ckpt/", RuntimeConfig(execution="ensemble"))
    runtime.put_image("front", rgb, stamp_s)                 # subscription callbacks, any thread
    runtime.put_joint_state(q, stamp_s)                      # q in `runtime.joint_input_names` order
    result = runtime.step(now_s, tick=k)                     # worker thread, once per 1/fps
    if result.chunk is not None: publish(result.chunk)       # whole chunk, see runtime/chunk.py

A tick (1) checks every input (never received / bad / stale -> no command, history cleared), (2) encodes
the newest sample of every stream into one observation token (each camera frame through its ResNet once,
reused while the camera repeats it) and appends it to the history, (3) asks the prior for a chunk when the
scheduler wants a decision, (4) plans the steps from now with the scheduler, (5) filters the plan for
safety. `runtime/worker.py` runs ticks on their own thread at absolute deadlines t0 + k/fps. An optimized path
(`compile_mode`, `autocast`) runs only once the first tick with good inputs has checked it against eager fp32
(`runtime/fast_path.py`); `runtime.inference` says which path runs and why.

Inputs are refused at the boundary when the checkpoint cannot represent them: NaN/Inf, and finite values so
far outside the training range (`INPUT_RANGE_FACTOR`) that normalising them overflows float32 or drives the
network into nonsense (a joint at 1e30). A refused input stops commands and is named, like a stale one.
Stamps that step back by more than a stream's max age (a bag loop, a sim reset, the end of a burst of
future-stamped messages) restart that stream instead of being refused as out of order until the old
timeline is caught up; `clock_stepped_back` does the same for every stream when the node clock steps back.

Tokens are assembled with the observation encoder's public parts (`encode_camera`, `encode_vector`, `assemble`)
so that camera features can be cached per frame; `test_runtime_engine.py` checks the token equals
`VQBeTPolicy.encode_observations`.
"""
from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from vqbet_ros import constants
from vqbet_ros.model.scheduler import make_scheduler
from vqbet_ros.runtime.chunk import ActionChunk
from vqbet_ros.runtime.config import RuntimeConfig
from vqbet_ros.runtime.fast_path import InferenceParts, Parts
from vqbet_ros.runtime.history import FrameFeatureCache, ObservationHistory
from vqbet_ros.runtime.images import fit_image
from vqbet_ros.runtime.safety import SafetyFilter, UnsafeCommand
from vqbet_ros.runtime.stream_cache import StreamCache

log = logging.getLogger(__name__)

JOINTS = "joint_states"
CACHE_DEPTH = 8  # values kept per stream: covers a few ms of clock skew between publishers and the node
# A joint or low-dim value is refused when it lies further outside the checkpoint's training range [min, max]
# than this many times the range's width (at least 1 unit): ~1000x beyond anything the policy was trained
# on, far from any real reading, and still small enough that float32 normalisation stays finite.
INPUT_RANGE_FACTOR = 1000.0


def camera_stream(camera: str) -> str:
    return f"camera:{camera}"


def low_dim_stream(name: str) -> str:
    return f"low_dim:{name}"


def resolve_device(device: str) -> torch.device:
    """`auto` -> CUDA when available, else CPU; `cuda` without CUDA is an error that says so."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("`device` is 'cuda' but torch sees no CUDA device; use 'auto' or 'cpu'")
    return torch.device(device)


@dataclass
class StepResult:
    """What one control tick produced.

    Args:
        tick: control tick index (grid index of the worker).
        now_s: tick time (node clock).
        status: `running`, `waiting` (an input never arrived), `stale` (an input too old), `bad_input`
            (an input was refused, or the policy output was not finite), `error` (the tick raised; the
            worker reports it and goes on with the next tick).
        problems: stream -> reason, for every input that stopped this tick.
        chunk: the trajectory to publish this tick (every tick when ensembling; when a chunk is decided
            open-loop), or None.
        command: (A,) target for now (forward controllers), or None.
        decided: a new chunk was predicted this tick.
        compute_s: wall time of the tick in the runtime (s).
        generation: `PolicyRuntime.generation` when the tick started; a result of an older generation was
            computed before a reset or an enable and must not be published.
    """

    tick: int
    now_s: float
    status: str
    problems: dict[str, str] = field(default_factory=dict)
    chunk: ActionChunk | None = None
    command: np.ndarray | None = None
    decided: bool = False
    compute_s: float = 0.0
    generation: int = 0


class PolicyRuntime:
    """One checkpoint executed against live inputs. Thread-safe between `put_*` callers and `step`."""

    def __init__(self, checkpoint, config: RuntimeConfig):
        self.checkpoint = checkpoint
        self.config = config
        self.spec = spec = checkpoint.config.spec
        config.validate_for(spec.action_names)
        if config.cpu_threads > 0:
            torch.set_num_threads(config.cpu_threads)
        self.policy = checkpoint.policy.eval()
        self.normalizer = checkpoint.normalizer
        self.device = next(self.policy.parameters()).device
        self.dt_s = spec.dt
        self.safety = SafetyFilter(config.joint_lower_limits, config.joint_upper_limits,
                                   config.max_delta_per_step or None)
        # Joints read from the joint states: the state joints, plus the commanded ones the step limit needs.
        extra = [n for n in spec.action_names if n not in spec.joint_names] if self.safety.needs_measured_state else []
        self.joint_input_names: list[str] = list(spec.joint_names) + extra
        self._measured_index = (
            [self.joint_input_names.index(n) for n in spec.action_names] if self.safety.needs_measured_state else None
        )
        ages = config.max_ages_s(spec.dt)
        max_age = {camera_stream(c): ages["camera"] for c in spec.cameras}
        if self.joint_input_names:
            max_age[JOINTS] = ages["joints"]
        max_age.update({low_dim_stream(n): ages["low_dim"] for n in spec.low_dim})
        self.streams = list(max_age)
        self.cache = StreamCache(max_age, depth=CACHE_DEPTH)
        self._input_bounds = self._representable_bounds()
        self._lock = threading.Lock()
        self._errors: dict[str, str] = {}  # stream -> reason of the last message refused (until a good one)
        self._last_stamp: dict[str, float] = {}
        self._seq = 0
        self.received = {s: 0 for s in self.streams}
        self.refused = {s: 0 for s in self.streams}
        self.frames_encoded = {c: 0 for c in spec.cameras}  # backbone forwards per camera
        self.frames_used = {c: 0 for c in spec.cameras}  # distinct frames that entered the history
        self._last_used_seq: dict[str, int] = {}
        self.decisions = 0
        self.generation = 0  # bumped by request_reset and by enabling; see StepResult.generation
        self.clock_events = 0  # clock steps back seen (node clock or a stream's stamps)
        self.last_clock_event: str | None = None
        self.enabled = config.enable_control
        self._reset_requested = threading.Event()
        self._plan_reset_requested = threading.Event()

        # eager fp32 and the optimized path (compile_mode, autocast) behind the parity gate; public so that
        # its state and reason can be read (diagnostics) and a path injected in tests
        self.inference = InferenceParts(self.policy, config.compile_mode, config.autocast, config.parity_tolerance,
                                        self.device)
        self._features = FrameFeatureCache()
        self.history = ObservationHistory(spec.n_obs_steps, self.policy.obs_encoder.token_dim, self.device)
        self.scheduler = make_scheduler(config.execution, spec.chunk_size)
        self._generator = None
        if config.seed >= 0:
            self._generator = torch.Generator(device=self.device)
        self._pinned = self.device.type == "cuda"
        self._copy_events: dict[int, torch.cuda.Event] = {}
        self._image_host = {c: self._host_buffer((1, *spec.cameras[c]), torch.uint8) for c in spec.cameras}
        self._image_dev = {c: torch.zeros(1, *spec.cameras[c], dtype=torch.uint8, device=self.device)
                           for c in spec.cameras}
        self._vector_keys = list(self.policy.obs_encoder.vector_keys.items())  # (key, size) in token order
        self._low_dim_streams = {constants.low_dim_key(n): low_dim_stream(n) for n in spec.low_dim}
        n_vector = self.policy.obs_encoder.vector_dim
        self._vector_host = self._host_buffer((1, n_vector), torch.float32)
        self._vector_dev = torch.zeros(1, n_vector, device=self.device)
        self.reset()

    @classmethod
    def from_checkpoint(cls, directory, config: RuntimeConfig) -> PolicyRuntime:
        from vqbet_ros.model.checkpoint import load_checkpoint

        return cls(load_checkpoint(directory, device=resolve_device(config.device)), config)

    def _host_buffer(self, shape, dtype) -> torch.Tensor:
        # Pinned (page-locked) host memory lets the host->device copy run asynchronously (non_blocking).
        return torch.zeros(shape, dtype=dtype, pin_memory=self._pinned)

    # ---- inputs (subscription callbacks) -------------------------------------------------------------
    def _accept(self, stream: str, stamp_s: float) -> str | None:
        """Order check under the lock; returns a refusal reason or None. Updates the last stamp either way.
        A step back beyond the stream's max age is a new timeline, not a late message: accepted (the cache
        drops the old timeline)."""
        last = self._last_stamp.get(stream)
        self._last_stamp[stream] = stamp_s
        self.received[stream] += 1
        if last is not None and stamp_s < last:
            if not self.cache.steps_back(stream, last, stamp_s):
                return f"out-of-order stamp: {stamp_s:.6f} s is older than the previous message ({last:.6f} s)"
            self._clock_event(f"stamps of `{stream}` stepped back {last - stamp_s:.3f} s "
                              f"(from {last:.3f} s to {stamp_s:.3f} s): its older messages were dropped")
        return None

    def _clock_event(self, what: str) -> None:
        self.clock_events += 1
        self.last_clock_event = what
        log.warning(what)

    def clock_stepped_back(self, now_s: float, by_s: float) -> None:
        """The node clock went back by `by_s` (sim reset, bag loop, NTP step): every cached input and stamp
        belongs to the old timeline. Drop them and restart the history; inputs count again from their next
        message. Any thread."""
        with self._lock:
            self.cache.clear()
            self._last_stamp.clear()
            self._errors.clear()
            self._clock_event(f"node clock stepped back {by_s:.3f} s (to {now_s:.3f} s): input caches cleared, "
                              "history restarted")
        self.request_reset()

    def _representable_bounds(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """stream -> (low, high) accepted values per entry, from the checkpoint's min/max stats widened by
        `INPUT_RANGE_FACTOR` (see there). Streams without stats (cameras) are absent."""
        def widened(lo, hi):
            lo, hi = np.asarray(lo, dtype=np.float64), np.asarray(hi, dtype=np.float64)
            margin = INPUT_RANGE_FACTOR * np.maximum(hi - lo, 1.0)
            return lo - margin, hi + margin

        stats = self.normalizer.stats
        bounds = {}
        if self.joint_input_names and constants.STATE in stats and constants.ACTION in stats:
            state, action = stats[constants.STATE], stats[constants.ACTION]
            lo, hi = [], []
            for name in self.joint_input_names:
                entry, i = ((state, self.spec.joint_names.index(name)) if name in self.spec.joint_names
                            else (action, self.spec.action_names.index(name)))
                lo.append(np.asarray(entry["min"], dtype=np.float64).reshape(-1)[i])
                hi.append(np.asarray(entry["max"], dtype=np.float64).reshape(-1)[i])
            bounds[JOINTS] = widened(lo, hi)
        for name in self.spec.low_dim:
            entry = stats.get(constants.low_dim_key(name))
            if entry is not None:
                bounds[low_dim_stream(name)] = widened(entry["min"], entry["max"])
        return bounds

    def _unrepresentable(self, stream: str, values: np.ndarray, names: list[str]) -> str | None:
        """Reason why finite `values` of `stream` are refused, or None."""
        if stream not in self._input_bounds:
            return None
        lo, hi = self._input_bounds[stream]
        bad = np.flatnonzero((values < lo) | (values > hi))
        if bad.size == 0:
            return None
        return "; ".join(f"`{names[i]}` = {values[i]:.6g} is outside what the checkpoint can represent "
                         f"(accepted [{lo[i]:.6g}, {hi[i]:.6g}], {INPUT_RANGE_FACTOR:g}x its training range)"
                         for i in bad[:3])

    def _store(self, stream: str, value, stamp_s: float, error: str | None) -> None:
        with self._lock:
            error = self._accept(stream, stamp_s) or error
            if error is not None:
                self._errors[stream] = error
                self.refused[stream] += 1
                return
            self._errors.pop(stream, None)
            self._seq += 1
            self.cache.put(stream, (self._seq, value), stamp_s)

    def report_bad_input(self, stream: str, reason: str, stamp_s: float | None = None) -> None:
        """A message the node could not convert (wrong encoding, malformed, missing joints): refuse the stream
        until its next good message."""
        with self._lock:
            if stream in self.received:
                self.received[stream] += 1
                self.refused[stream] += 1
            self._errors[stream] = reason

    def put_image(self, camera: str, rgb: np.ndarray, stamp_s: float) -> None:
        """RGB uint8 (H, W, 3) frame of `camera` -> resized/cropped to the checkpoint's shape and cached."""
        stream = camera_stream(camera)
        try:
            value, error = fit_image(rgb, self.spec.cameras[camera], self.config.resize_images), None
        except ValueError as err:
            value, error = None, str(err)
        self._store(stream, value, stamp_s, error)

    def put_joint_state(self, positions: np.ndarray, stamp_s: float) -> None:
        """Positions of `joint_input_names`, in that order."""
        positions = np.asarray(positions, dtype=np.float64)
        error = None
        if positions.shape != (len(self.joint_input_names),):
            error = f"expected {len(self.joint_input_names)} positions for {self.joint_input_names}, got {positions.shape}"
        elif not np.all(np.isfinite(positions)):
            bad = [n for n, v in zip(self.joint_input_names, positions) if not math.isfinite(v)]
            error = f"NaN/Inf position for joint(s) {bad}"
        else:
            error = self._unrepresentable(JOINTS, positions, [f"joint {n}" for n in self.joint_input_names])
        self._store(JOINTS, positions, stamp_s, error)

    def put_low_dim(self, name: str, values: np.ndarray, stamp_s: float) -> None:
        values = np.asarray(values, dtype=np.float64).reshape(-1)
        size = self.spec.low_dim[name]
        error = None
        if values.shape != (size,):
            error = f"expected {size} values for low-dim input `{name}`, got {values.shape[0]}"
        elif not np.all(np.isfinite(values)):
            error = f"NaN/Inf in low-dim input `{name}`: {values.tolist()}"
        else:
            error = self._unrepresentable(low_dim_stream(name), values, [f"{name}[{i}]" for i in range(size)])
        self._store(low_dim_stream(name), values, stamp_s, error)

    # ---- control ---------------------------------------------------------------------------------------
    def reset(self) -> None:
        """Start a new episode: empty history (padded with the next frame), empty plan, fresh sampling seed."""
        self.history.clear()
        self.scheduler.reset()
        self._features.clear()
        if self._generator is not None:
            self._generator.manual_seed(self.config.seed)

    def reseed(self, seed: int) -> None:
        """Sample codes from a generator seeded with `seed` from the next `reset()` on (`vqbet-demo` gives each
        episode the seed `vqbet-eval` gives it, so that both sample the same codes)."""
        self.config.seed = seed
        if self._generator is None:
            self._generator = torch.Generator(device=self.device)

    def request_reset(self) -> None:
        """`reset()` from another thread (a service): done by the worker at the start of its next tick.
        Bumps `generation`, so the result of a tick already under way can be told apart and dropped."""
        self._reset_requested.set()  # before the bump: a tick that sees the new generation also sees the flag
        with self._lock:
            self.generation += 1

    def set_enabled(self, enabled: bool) -> None:
        """Enabling starts from a fresh plan (at the next tick) in a new `generation`, so no chunk computed
        during a dry run is executed later. Any thread."""
        if enabled and not self.enabled:
            self._plan_reset_requested.set()
            with self._lock:
                self.generation += 1
        self.enabled = enabled

    def check_inputs(self, now_s: float):
        """(snapshot, problems): problems maps stream -> reason; empty when every input is usable at `now_s`."""
        snapshot = self.cache.sample(now_s)
        with self._lock:
            errors = dict(self._errors)
        problems = {s: errors.get(s) or snapshot.stale.get(s) for s in self.streams}
        return snapshot, {s: r for s, r in problems.items() if r}

    def _status(self, problems: dict[str, str]) -> str:
        with self._lock:
            if any(s in self._errors for s in problems):
                return "bad_input"
        if all(r == "never received" for r in problems.values()):
            return "waiting"
        return "stale"

    def step(self, now_s: float, tick: int) -> StepResult:
        """One control tick at `now_s` (node clock). Never raises for bad inputs: they are reported."""
        t0 = time.perf_counter()
        generation = self.generation  # before the flags: see request_reset
        if self._reset_requested.is_set():
            self._reset_requested.clear()
            self.reset()
        if self._plan_reset_requested.is_set():
            self._plan_reset_requested.clear()
            self.scheduler.reset()
        snapshot, problems = self.check_inputs(now_s)
        if problems:
            self.reset()  # a gap in the history: restart it (padded) once inputs are good again
            return StepResult(tick, now_s, self._status(problems), problems, compute_s=time.perf_counter() - t0,
                              generation=generation)
        if self.inference.pending:
            self._check_inference(snapshot)
        token = self._encode_step(snapshot)  # (1, Dt)
        self.history.push(token)
        decided = False
        if self.scheduler.wants_decision(tick):
            chunk = self._predict()  # (W, A) action units
            if not np.all(np.isfinite(chunk)):
                self.reset()
                return StepResult(tick, now_s, "bad_input", {"policy": "policy output is not finite (NaN/Inf)"},
                                  compute_s=time.perf_counter() - t0, generation=generation)
            self.scheduler.add(tick, chunk)
            self.decisions += 1
            decided = True
        plan = self.scheduler.plan(tick)
        measured = None
        if self._measured_index is not None:
            measured = snapshot.samples[JOINTS].value[1][self._measured_index]
        try:
            plan = self.safety.apply(plan, measured)
        except UnsafeCommand as err:
            self.reset()
            return StepResult(tick, now_s, "bad_input", {"policy": str(err)}, compute_s=time.perf_counter() - t0,
                              generation=generation)
        publish_chunk = decided or self.config.execution == "ensemble"
        chunk = ActionChunk(list(self.spec.action_names), plan, now_s, self.dt_s, tick) if publish_chunk else None
        return StepResult(tick, now_s, "running", {}, chunk, plan[0].copy(), decided, time.perf_counter() - t0,
                          generation)

    def confirm(self, result: StepResult) -> StepResult:
        """`result`, unless an input was refused while its tick ran (a NaN, absurd or malformed message arrived
        during the decision, which takes up to a second on a starved CPU): then a result without chunk or
        command that names it, as the next tick would give, so nothing goes out once a fault is known. Inputs
        that only aged meanwhile do not stop it: it was decided on inputs fresh at its tick time, the stamp
        its chunk carries."""
        if result.status != "running":
            return result
        with self._lock:  # a tick runs only while no stream has an error: any there now came during it
            problems = {s: r for s, r in self._errors.items() if s in self.streams}
        if not problems:
            return result
        self.reset()
        return StepResult(result.tick, result.now_s, "bad_input", problems, compute_s=result.compute_s,
                          generation=result.generation)

    # ---- model -----------------------------------------------------------------------------------------
    def _host_ready(self, host: torch.Tensor) -> None:
        """Before writing a pinned buffer: wait for the asynchronous copy that last read it (CUDA only)."""
        event = self._copy_events.get(host.data_ptr())
        if event is not None:
            event.synchronize()

    def _upload(self, host: torch.Tensor, dev: torch.Tensor) -> torch.Tensor:
        """Host buffer -> its preallocated device twin; pinned memory + non_blocking on CUDA."""
        if dev.device.type == "cpu":
            return host
        dev.copy_(host, non_blocking=self._pinned)
        if self._pinned:
            event = self._copy_events.setdefault(host.data_ptr(), torch.cuda.Event())
            event.record()
        return dev

    def _image_input(self, camera: str, image: np.ndarray) -> torch.Tensor:
        """A fitted frame -> the (1, 3, H, W) uint8 tensor on the device that the camera's encoder takes."""
        self._host_ready(self._image_host[camera])
        self._image_host[camera][0].numpy()[...] = image
        return self._upload(self._image_host[camera], self._image_dev[camera])

    def _vector_input(self, snapshot) -> torch.Tensor:
        """Joint states and low-dim inputs, normalized, concatenated in the encoder's order, on the device."""
        self._host_ready(self._vector_host)
        host = self._vector_host[0].numpy()
        offset = 0
        for key, size in self._vector_keys:
            if key == constants.STATE:
                raw = snapshot.samples[JOINTS].value[1][:size]
            else:
                raw = snapshot.samples[self._low_dim_streams[key]].value[1]
            host[offset:offset + size] = self.normalizer.normalize(key, raw)
            offset += size
        return self._upload(self._vector_host, self._vector_dev)

    def _encode_step(self, snapshot) -> torch.Tensor:
        """Newest sample of every stream -> one token (1, Dt) in the encoder's order: cameras, then vectors."""
        parts = []
        for i, camera in enumerate(self.spec.cameras):
            seq, image = snapshot.samples[camera_stream(camera)].value
            features = self._features.get(camera, seq)
            if features is None:
                features = self.inference.cameras[i](self._image_input(camera, image))
                self._features.put(camera, seq, features)
                self.frames_encoded[camera] += 1
            if self._last_used_seq.get(camera) != seq:
                self._last_used_seq[camera] = seq
                self.frames_used[camera] += 1
            parts.append(features)  # (1, Dc)
        vector = self.inference.vector
        return self.policy.obs_encoder.assemble(
            parts, None if vector is None else vector(self._vector_input(snapshot)))  # (1, Dt)

    def _check_inference(self, snapshot) -> None:
        """The parity gate (runtime/fast_path.py) on the first observation with every input good; this tick
        and the following ones then run the path it chose."""
        images = [self._image_input(c, snapshot.samples[camera_stream(c)].value[1]) for c in self.spec.cameras]
        vector = self._vector_input(snapshot) if self.policy.obs_encoder.vector_dim else None
        self.inference.check(images, vector, self.spec.n_obs_steps, seeded=self._generator is not None)

    def _predict(self) -> np.ndarray:
        chunk = self.inference.predict_chunk(self.history.tokens, generator=self._generator)  # (1, W, A) normalized
        chunk = chunk[0].float().cpu().numpy()  # (W, A); the device sync point of a decision
        return np.asarray(self.normalizer.unnormalize(constants.ACTION, chunk), dtype=np.float64)

    def warmup(self) -> None:
        """Run encoder and prior `warmup_steps` times on blank inputs (CUDA context, cuDNN autotune,
        torch.compile), eager and optimized path, leaving history, cache and counters untouched."""
        if self.config.warmup_steps == 0:
            return
        with torch.inference_mode():
            self.inference.warm(self._warm)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self.reset()

    def _warm(self, parts: Parts) -> None:
        for _ in range(self.config.warmup_steps):
            images = [self._upload(self._image_host[c], self._image_dev[c]) for c in self.spec.cameras]
            vector = self._upload(self._vector_host, self._vector_dev) if parts.vector is not None else None
            tokens = parts.token(images, vector)[:, None].expand(1, self.spec.n_obs_steps, -1).contiguous()
            parts.predict_chunk(tokens, generator=self._generator).cpu()  # as the ticks call it

    # ---- diagnostics -----------------------------------------------------------------------------------
    def input_ages_s(self, now_s: float) -> dict[str, float | None]:
        """stream -> age at `now_s` of the newest message not stamped after `now_s` (what a tick would use;
        never negative), or None when there is none (never received, or every message is stamped ahead)."""
        ages = {}
        for s in self.streams:
            sample = self.cache.get(s, now_s)
            ages[s] = None if sample is None else sample.age_s
        return ages

    def frames_dropped(self) -> dict[str, int]:
        """camera -> frames received that never entered the history (camera faster than fps, or refused)."""
        return {c: max(0, self.received[camera_stream(c)] - self.frames_used[c] - 1)
                for c in self.spec.cameras}
