"""The package builds with colcon the way a ROS 2 workspace builds it, and lands where `ros2 run` /
`ros2 launch` look: executables in `lib/vqbet_ros`, launch and config files in `share/vqbet_ros`."""
import ast
import configparser
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SKIP = {".git", ".venv", "build", "install", "log", "outputs", "runs", "__pycache__", ".pytest_cache"}


def _console_scripts() -> dict[str, str]:
    """name -> "module:function", read from setup.py without running it."""
    tree = ast.parse((REPO / "setup.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values):
                if isinstance(key, ast.Constant) and key.value == "console_scripts":
                    pairs = (ast.literal_eval(v).split("=") for v in value.elts)
                    return {name.strip(): target.strip() for name, target in pairs}
    raise AssertionError("setup.py declares no console_scripts")


def test_package_xml_declares_run_dependencies():
    root = ET.parse(REPO / "package.xml").getroot()
    assert root.get("format") == "3"
    assert root.findtext("name") == "vqbet_ros"
    deps = {e.text for e in root.findall("exec_depend")}
    for dep in ("rclpy", "sensor_msgs", "std_msgs", "trajectory_msgs", "std_srvs", "diagnostic_msgs",
                "lifecycle_msgs", "launch_ros", "python3-torch"):
        assert dep in deps, f"package.xml lacks <exec_depend>{dep}</exec_depend>"
    assert root.find("export/build_type").text == "ament_python"


def test_setup_cfg_puts_scripts_in_lib_package():
    cfg = configparser.ConfigParser()
    cfg.read(REPO / "setup.cfg")
    assert cfg["develop"]["script_dir"] == "$base/lib/vqbet_ros"
    assert cfg["install"]["install_scripts"] == "$base/lib/vqbet_ros"


def test_every_console_script_points_at_an_existing_main():
    for name, target in _console_scripts().items():
        module, func = target.split(":")
        path = REPO / (module.replace(".", "/") + ".py")
        assert path.is_file(), f"console script `{name}` points at missing module {path}"
        defined = {n.name for n in ast.parse(path.read_text()).body if isinstance(n, ast.FunctionDef)}
        assert func in defined, f"console script `{name}`: {module} has no function `{func}`"


def test_colcon_build_installs_executables_launch_and_config(tmp_path):
    colcon = Path(sys.executable).parent / "colcon"
    if not colcon.exists():
        colcon = shutil.which("colcon")
    if colcon is None:
        pytest.skip("colcon is not installed (pip install -e .[test])")
    src = tmp_path / "src" / "vqbet_ros"
    shutil.copytree(REPO, src, ignore=lambda d, names: [n for n in names if n in SKIP or n.endswith(".egg-info")])
    result = subprocess.run(
        [str(colcon), "build", "--base-paths", "src"], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout + result.stderr
    install = tmp_path / "install" / "vqbet_ros"
    executables = {p.name for p in (install / "lib" / "vqbet_ros").iterdir()}
    assert set(_console_scripts()) <= executables
    share = install / "share" / "vqbet_ros"
    for launch_file in (REPO / "launch").glob("*.launch.py"):
        assert (share / "launch" / launch_file.name).is_file()
    for config_file in (REPO / "config").glob("*.yaml"):
        assert (share / "config" / config_file.name).is_file()
    assert (share / "package.xml").is_file()
    assert (tmp_path / "install" / "share" / "ament_index" / "resource_index" / "packages" / "vqbet_ros").exists() \
        or (install / "share" / "ament_index" / "resource_index" / "packages" / "vqbet_ros").exists()


def test_core_layers_do_not_import_rclpy():
    offenders = []
    for layer in ("model", "data", "training", "runtime", "sim", "so101"):
        for path in (REPO / "vqbet_ros" / layer).rglob("*.py"):
            text = path.read_text()
            if "import rclpy" in text or "from rclpy" in text or "_msgs" in text:
                offenders.append(str(path.relative_to(REPO)))
    assert not offenders, f"ROS imports below nodes/: {offenders}"
