"""config/so101_demo.yaml and launch/so101_demo.launch.py: every parameter is one the nodes declare."""
import ast
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
CONFIG = yaml.safe_load((ROOT / "config" / "so101_demo.yaml").read_text())


def test_so101_demo_yaml_documents_every_sim_parameter_and_no_other():
    pytest.importorskip("rclpy")
    pytest.importorskip("vqbet_ros.so101")
    pytest.importorskip("mujoco")
    from vqbet_ros.nodes.so101_sim_node import PARAMETERS

    params = CONFIG["so101_sim"]["ros__parameters"]
    assert set(params) <= set(PARAMETERS), set(params) - set(PARAMETERS)
    assert set(PARAMETERS) <= set(params), "document every sim parameter in config/so101_demo.yaml"


def test_so101_demo_yaml_sets_only_declared_policy_parameters():
    pytest.importorskip("rclpy")
    from vqbet_ros.nodes.policy_node import NODE_PARAMETERS, RUNTIME_PARAMETERS

    params = CONFIG["policy_node"]["ros__parameters"]
    unknown = set(params) - set(NODE_PARAMETERS) - set(RUNTIME_PARAMETERS)
    assert not unknown, unknown


def test_so101_demo_launch_file_is_valid_python_with_a_launch_description():
    tree = ast.parse((ROOT / "launch" / "so101_demo.launch.py").read_text())
    assert "generate_launch_description" in {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
