"""Per-stream cache of stamped values with a maximum age (ROS-free; shared by the recorder and policy nodes).

Subscription callbacks `put(stream, value, stamp_s)`; a timer asks for the state of every stream at one
instant `at_s` (a tick of the sampling grid, or "now") and gets, per stream, the latest value whose stamp is
not newer than `at_s` (docs/ros2.md §3: the latest message of each topic, behind a staleness gate;
the same rule as Diffusion Policy's `get_obs` alignment). A stream is *stale* at `at_s` when it has never
been received, when its chosen value is older than its `max_age_s`, or when every value it holds is newer
than `at_s` (publisher clock ahead of ours, or history too short). Stale streams are reported by name with
a reason; they are never silently filled with an old value. A stream whose newest message is stamped more than
`max_age_s` ahead of the instant of asking (`now_s`, by default `at_s`) is stale too, with that reason (a
publisher clock far ahead, or our clock stepped back). A caller sampling a past instant (the recorder's grid
ticks) passes a later `now_s`: messages newer than that instant are then expected, not a sign of a clock ahead.

A stamp older than the stream's newest by more than its `max_age_s` is a clock step back (sim reset, bag loop,
NTP step, or the end of a burst of future-stamped messages): the stream's older-timeline values are dropped
and the new one is kept, so the cache follows the new timeline at once instead of holding the old one.

Stamps are float seconds on one clock (the node clock: header stamps, or receive time when a message has
none). Time is always an argument; this module never reads a clock.

    cache = StreamCache({"state": 0.1, "cam_front": 0.2}, depth=32)
    cache.put("state", q, stamp_s=12.003)          # from a callback thread
    snap = cache.sample(at_s=12.0333)              # from the timer
    if snap.stale: ...                             # {"cam_front": "never received"}
    q = snap.samples["state"].value

Thread-safe: one lock, held only for list operations (values are stored, never copied).
"""
from __future__ import annotations

import bisect
import threading
from dataclasses import dataclass, field
from typing import Any, Mapping


@dataclass(frozen=True)
class Sample:
    """One cached value: its stamp and its age at the instant it was asked for (`at_s - stamp_s`)."""

    value: Any
    stamp_s: float
    age_s: float


@dataclass(frozen=True)
class Snapshot:
    """All streams at one instant. `samples` holds every stream that has a value not newer than `at_s`
    (stale ones included, so callers can still log their age); `stale` maps stream -> human-readable reason."""

    at_s: float
    samples: dict[str, Sample]
    stale: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.stale

    def describe_stale(self) -> str:
        """One line naming every stale stream and why, e.g. for a refused start."""
        return "; ".join(f"`{name}`: {reason}" for name, reason in sorted(self.stale.items()))


class StreamCache:
    """Latest-not-newer-than lookups over a short history per stream.

    Args:
        max_age_s: stream name -> maximum age in seconds of a usable value. Streams are declared up front so a
            stream that never arrives is reported rather than forgotten.
        depth: values kept per stream (newest), one int for all or stream -> int. Must cover the time between a
            value's stamp and the last instant it may be asked for: e.g. joint states at 200 Hz sampled 0.1 s
            late need depth >= 20.
    """

    def __init__(self, max_age_s: Mapping[str, float], depth: int | Mapping[str, int] = 1):
        depths = {name: depth for name in max_age_s} if isinstance(depth, int) else dict(depth)
        for name, age in max_age_s.items():
            if not age > 0:
                raise ValueError(f"`max_age_s` for stream `{name}` is {age}; expected > 0 seconds")
            if depths.get(name, 0) < 1:
                raise ValueError(f"`depth` for stream `{name}` is {depths.get(name)}; expected >= 1")
        self._max_age_s = dict(max_age_s)
        self._depth = depths
        self._stamps: dict[str, list[float]] = {name: [] for name in self._max_age_s}
        self._values: dict[str, list[Any]] = {name: [] for name in self._max_age_s}
        self._lock = threading.Lock()

    @property
    def streams(self) -> list[str]:
        return list(self._max_age_s)

    def max_age_s(self, name: str) -> float:
        return self._max_age_s[name]

    def put(self, name: str, value: Any, stamp_s: float) -> bool:
        """Store `value` stamped `stamp_s`. Out-of-order stamps are inserted in order; the oldest beyond
        `depth` are dropped. Returns True when `stamp_s` stepped back by more than the stream's `max_age_s`
        from its newest value: the stream was cleared before storing (see the module docstring)."""
        if name not in self._stamps:
            raise KeyError(f"stream `{name}` was not declared; declared streams: {sorted(self._stamps)}")
        with self._lock:
            stamps, values = self._stamps[name], self._values[name]
            stepped_back = bool(stamps) and self.steps_back(name, stamps[-1], stamp_s)
            if stepped_back:
                stamps.clear()
                values.clear()
            if not stamps or stamp_s >= stamps[-1]:
                stamps.append(stamp_s)
                values.append(value)
            else:
                i = bisect.bisect_right(stamps, stamp_s)
                stamps.insert(i, stamp_s)
                values.insert(i, value)
            excess = len(stamps) - self._depth[name]
            if excess > 0:
                del stamps[:excess]
                del values[:excess]
        return stepped_back

    def steps_back(self, name: str, newest_s: float, stamp_s: float) -> bool:
        """Whether `stamp_s` after `newest_s` is a clock step back on `name` rather than a late message."""
        return stamp_s < newest_s - self._max_age_s[name]

    def get(self, name: str, at_s: float) -> Sample | None:
        """Latest value of `name` with stamp <= `at_s` (any age), or None if there is none."""
        with self._lock:
            stamps = self._stamps[name]
            i = bisect.bisect_right(stamps, at_s)
            if i == 0:
                return None
            return Sample(self._values[name][i - 1], stamps[i - 1], at_s - stamps[i - 1])

    def newest_stamp_s(self, name: str) -> float | None:
        with self._lock:
            stamps = self._stamps[name]
            return stamps[-1] if stamps else None

    def sample(self, at_s: float, now_s: float | None = None) -> Snapshot:
        """Every stream at `at_s`: its latest value not newer than `at_s`, and which streams are stale. `now_s`
        (>= `at_s`, default `at_s`) is when this is asked: a newest stamp more than `max_age_s` past it is a
        clock ahead."""
        now_s = at_s if now_s is None else now_s
        samples: dict[str, Sample] = {}
        stale: dict[str, str] = {}
        for name, max_age in self._max_age_s.items():
            sample = self.get(name, at_s)
            newest = self.newest_stamp_s(name)
            if sample is not None:
                samples[name] = sample
            if newest is None:
                stale[name] = "never received"
            elif newest > now_s + max_age:
                stale[name] = (f"newest message is stamped {newest - now_s:.3f} s ahead of t={now_s:.3f} s: "
                               "publisher clock ahead of this node's clock, or this node's clock stepped back")
            elif sample is None:
                stale[name] = (f"every cached message is newer than t={at_s:.3f} s (newest {newest:.3f} s): "
                               "publisher clock ahead of this node's clock, or cache depth too small")
            elif sample.age_s > max_age:
                stale[name] = f"latest message is {sample.age_s:.3f} s old (max_age_s {max_age:g})"
        return Snapshot(at_s, samples, stale)

    def clear(self, name: str | None = None) -> None:
        """Drop every value of `name`, or of every stream."""
        with self._lock:
            for name in [name] if name is not None else self._stamps:
                self._stamps[name].clear()
                self._values[name].clear()
