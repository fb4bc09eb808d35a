"""Shared test set-up.

ROS 2 tests run real rclpy over Fast DDS on loopback. Each pytest process picks its own ROS domain, one that
no process on this machine uses (`vqbet_ros/nodes/ros_domain.py`), so parallel runs never hear each other's
topics and a robot or a recording running here never hears the tests'. VQBET_TEST_ROS_DOMAIN_ID chooses one.
"""
import os

from vqbet_ros.nodes.ros_domain import free_ros_domain

os.environ["ROS_DOMAIN_ID"] = os.environ.get("VQBET_TEST_ROS_DOMAIN_ID") or str(free_ros_domain())
os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
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


def require_shared(path: Path, ci: str | None) -> Path:
    """`path` if it is a folder. Missing, the test skips on a developer's machine but fails in CI (`ci`, the
    `CI` environment variable, set by `.ci/run`), where a skip would hide that the test never ran."""
    if path.is_dir():
        return path
    message = (f"`{path}` is not present: this test reads the PushT demos or the SO-101 sample dataset from "
               "`../shared`, the folder beside the checkout; put it there")
    if ci:
        pytest.fail(f"{message} (CI={ci!r}: in CI a missing `../shared` is an error)", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """`../shared` beside the checkout (real datasets; read-only, never copied into the repo)."""
    return require_shared(SHARED, os.environ.get("CI"))


@pytest.fixture
def ros_context():
    """A fresh rclpy context for one test; shut down afterwards."""
    rclpy = pytest.importorskip("rclpy")
    context = rclpy.context.Context()
    rclpy.init(context=context)
    yield context
    if context.ok():
        rclpy.shutdown(context=context)
