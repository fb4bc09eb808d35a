"""Shared test set-up.

ROS 2 tests run real rclpy over Fast DDS on loopback. Each pytest process picks its own ROS domain so that
parallel runs on one machine never hear each other's topics.
"""
import os
import random

os.environ.setdefault("ROS_DOMAIN_ID", str(random.Random(os.getpid()).randint(1, 100)))
os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
os.environ.setdefault("RCUTILS_LOGGING_BUFFERED_STREAM", "1")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


def pytest_configure(config):
    """Tiny test models run fastest on one torch thread; on 2 cores several threads per process (and the ROS
    executor threads beside them) stall each other, up to 30x in our measurements."""
    try:
        import torch
    except ImportError:
        return
    torch.set_num_threads(1)
    try:  # node tests spin multi-threaded executors in-process, as a node process does
        from vqbet_ros.nodes.entry import use_short_switch_interval
    except ImportError:  # no rclpy: the node tests skip
        return
    use_short_switch_interval()


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """`../shared` beside the checkout (real datasets; read-only, never copied into the repo)."""
    if not SHARED.is_dir():
        pytest.skip(f"{SHARED} is not present")
    return SHARED


@pytest.fixture
def ros_context():
    """A fresh rclpy context for one test; shut down afterwards."""
    rclpy = pytest.importorskip("rclpy")
    context = rclpy.context.Context()
    rclpy.init(context=context)
    yield context
    if context.ok():
        rclpy.shutdown(context=context)
