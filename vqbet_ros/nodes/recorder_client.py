"""The recorder node's episode services as a teleop node uses them: start, stop (save) and discard an episode.

Everything is asynchronous (callbacks), so a teleop that paces a lockstep sim never blocks its executor. A
start the recorder refuses (a camera or the action not heard yet, typically right after a reset) is retried a
few times on the steady clock, since sim time stands still while the sim waits for a command.
"""
from __future__ import annotations

from typing import Callable

from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from std_srvs.srv import Trigger

START_ATTEMPTS = 100  # start requests before giving up: 30 s, for a recorder still discovering streams at start-up
START_RETRY_S = 0.3  # wall seconds between them

SERVICE_PARAMETERS = {  # name: (default, description), declared by the teleop nodes that drive a recorder
    "start_episode_service": ("", "recorder service called before each demo (std_srvs/Trigger); empty = none"),
    "stop_episode_service": ("", "recorder service called after each demo (std_srvs/Trigger); empty = none"),
}


class RecorderClient:
    """Calls a recorder's `start_episode` / `stop_episode` / `discard_episode` services (any may be absent:
    an empty name). Results come back through callbacks: `on_done()` or `on_failed(message)`."""

    def __init__(self, node: Node, start_service: str = "", stop_service: str = "", discard_service: str = ""):
        self._node = node
        self._clients = {name: node.create_client(Trigger, service) if service else None
                         for name, service in (("start", start_service), ("stop", stop_service),
                                               ("discard", discard_service))}
        self._steady = Clock(clock_type=ClockType.STEADY_TIME)
        self._retry_timer = None

    @property
    def records(self) -> bool:
        """Whether episodes are started on a recorder at all."""
        return self._clients["start"] is not None

    @property
    def discards(self) -> bool:
        """Whether a failed episode can be discarded (else it is stopped and saved)."""
        return self._clients["discard"] is not None

    def services_ready(self) -> bool:
        return all(c.service_is_ready() for c in self._clients.values() if c is not None)

    def start(self, on_done: Callable[[], None], on_failed: Callable[[str], None],
              on_refused: Callable[[], None] | None = None, attempt: int = 1) -> None:
        """Start an episode; a refusal is retried up to START_ATTEMPTS times, START_RETRY_S apart, each after
        `on_refused()` (e.g. a teleop that holds a lockstep sim lets it run one period, so the streams the
        recorder is waiting for are published again)."""
        def answered(future) -> None:
            response = future.result()
            if response.success:
                on_done()
            elif attempt < START_ATTEMPTS:
                self._node.get_logger().info(f"recorder refused to start ({response.message}); retrying",
                                             throttle_duration_sec=2.0)
                if on_refused is not None:
                    on_refused()
                self._retry_timer = self._node.create_timer(START_RETRY_S, retry, clock=self._steady)
            else:
                on_failed(f"the recorder did not start an episode after {START_ATTEMPTS} attempts: "
                          f"{response.message!r}")

        def retry() -> None:
            self._node.destroy_timer(self._retry_timer)
            self.start(on_done, on_failed, on_refused, attempt + 1)

        self._call("start", answered)

    def stop(self, on_done: Callable[[], None], on_failed: Callable[[str], None]) -> None:
        """Stop and save the episode (nothing to do without a stop service)."""
        self._finish("stop", "stop", on_done, on_failed)

    def discard(self, on_done: Callable[[], None], on_failed: Callable[[str], None]) -> None:
        """Discard the episode (nothing to do without a discard service)."""
        self._finish("discard", "discard", on_done, on_failed)

    def _finish(self, action: str, verb: str, on_done, on_failed) -> None:
        if self._clients[action] is None:
            on_done()
            return

        def answered(future) -> None:
            response = future.result()
            if response.success:
                on_done()
            else:
                on_failed(f"the recorder did not {verb} the episode: {response.message!r}")

        self._call(action, answered)

    def _call(self, action: str, answered) -> None:
        self._clients[action].call_async(Trigger.Request()).add_done_callback(answered)
