"""config/sim_demo.yaml and launch/sim_demo.launch.py: every parameter is one the nodes declare, and they start."""
import ast
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
CONFIG = yaml.safe_load((ROOT / "config" / "sim_demo.yaml").read_text())


def test_sim_demo_yaml_sets_only_declared_sim_parameters():
    pytest.importorskip("rclpy")
    from vqbet_ros.nodes.pusht_sim_node import PARAMETERS

    params = CONFIG["pusht_sim"]["ros__parameters"]
    assert set(params) <= set(PARAMETERS), set(params) - set(PARAMETERS)
    assert set(PARAMETERS) <= set(params), "document every sim parameter in config/sim_demo.yaml"


def test_sim_demo_yaml_sets_only_declared_policy_parameters():
    pytest.importorskip("rclpy")
    from vqbet_ros.nodes.policy_node import NODE_PARAMETERS, RUNTIME_PARAMETERS

    params = CONFIG["policy_node"]["ros__parameters"]
    unknown = set(params) - set(NODE_PARAMETERS) - set(RUNTIME_PARAMETERS)
    assert not unknown, unknown


def test_sim_node_starts_with_sim_demo_yaml(ros_context):
    pytest.importorskip("gym_pusht")
    from rclpy.parameter import Parameter

    from vqbet_ros.nodes.pusht_sim_node import PushTSimNode

    params = CONFIG["pusht_sim"]["ros__parameters"]
    node = PushTSimNode(context=ros_context, parameter_overrides=[Parameter(k, value=v) for k, v in params.items()])
    try:
        assert node.get_parameter("auto_reset").value is True
    finally:
        node.destroy_node()


def test_sim_demo_launch_file_is_valid_python_with_a_launch_description():
    source = (ROOT / "launch" / "sim_demo.launch.py").read_text()
    tree = ast.parse(source)
    assert "generate_launch_description" in {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
