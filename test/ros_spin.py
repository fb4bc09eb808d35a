"""What the end-to-end tests share (not a test module): nodes spun in the background, a wall-clock wait, and the
parameters of a params file as ROS names."""
from __future__ import annotations

import threading
import time

from rclpy.executors import MultiThreadedExecutor


class Spinner:
    """A multi-threaded executor spinning the given nodes in the background."""

    def __init__(self, context, nodes):
        self.executor = MultiThreadedExecutor(num_threads=4, context=context)
        for node in nodes:
            self.executor.add_node(node)
        self.thread = threading.Thread(target=self.executor.spin, daemon=True)
        self.thread.start()

    def stop(self):
        self.executor.shutdown(timeout_sec=5.0)


def wait_for(predicate, timeout_s, what):
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def flat_parameters(tree: dict, prefix: str = ""):
    """(name, value) of each parameter under a params file's `ros__parameters`: nested keys joined by dots
    (`cameras: {front: {topic: t}}` -> `cameras.front.topic`), as ROS reads them."""
    for key, value in tree.items():
        if isinstance(value, dict):
            yield from flat_parameters(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value
