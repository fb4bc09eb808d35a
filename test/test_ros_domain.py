"""A free ROS domain (nodes/ros_domain.py) for the tests and `vqbet-demo`: one a participant on this machine
uses is never taken."""
import os

import pytest

from vqbet_ros.nodes.ros_domain import domain_in_use, free_ros_domain


def test_the_suite_runs_on_its_own_domain_and_discovers_only_this_host():
    assert os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] == "LOCALHOST"
    domain = int(os.environ["ROS_DOMAIN_ID"])
    assert 1 <= domain <= 100


def test_a_domain_with_a_participant_on_this_machine_is_skipped():
    rclpy = pytest.importorskip("rclpy")
    candidates = [d for d in range(150, 200) if not domain_in_use(d)][:2]
    busy, free = candidates
    context = rclpy.context.Context()
    rclpy.init(context=context, domain_id=busy)
    node = rclpy.create_node("domain_holder", context=context)
    try:
        assert domain_in_use(busy)
        assert free_ros_domain([busy, free]) == free
    finally:
        node.destroy_node()
        rclpy.shutdown(context=context)
    assert not domain_in_use(busy)
    assert free_ros_domain([busy, free]) == busy
