"""A free ROS domain (nodes/ros_domain.py) for the tests and `vqbet-demo`: one a participant on this machine
uses is never taken."""
import os
import subprocess
import sys

import pytest

from vqbet_ros.nodes.ros_domain import domain_in_use, free_ros_domain


def test_the_suite_runs_on_its_own_domain_and_discovers_only_this_host():
    assert os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] == "LOCALHOST"
    domain = int(os.environ["ROS_DOMAIN_ID"])
    assert 1 <= domain <= 100


def test_a_domain_with_a_participant_on_this_machine_is_skipped():
    """A node in another process (as a robot's driver) holds its domain; once it exits the domain is free."""
    pytest.importorskip("rclpy")
    busy, free = [d for d in range(150, 200) if not domain_in_use(d)][:2]
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, rclpy; rclpy.init(domain_id=int(sys.argv[1])); "
         "node = rclpy.create_node('robot_driver'); print('up', flush=True); sys.stdin.read()", str(busy)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "up"
        assert domain_in_use(busy)
        assert free_ros_domain([busy, free]) == free
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
    assert not domain_in_use(busy)
    assert free_ros_domain([busy, free]) == busy
