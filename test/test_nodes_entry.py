"""Node processes started the way `ros2 run` starts them (`main()`), on whichever rclpy this environment has
(`./dev test` runs this file on Kilted and on Jazzy): they come up, do their job, and exit 0 without a
traceback when SIGINT arrives, also when a second one arrives during shutdown (what a non-interactive
`ros2 launch` does). The launch files themselves are tested in test_launch_files.py."""
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

pytest.importorskip("rclpy")
pytest.importorskip("gym_pusht")

from vqbet_ros.config_io import load_yaml  # noqa: E402
from vqbet_ros.model.config import VQBeTConfig  # noqa: E402
from vqbet_ros.pusht.wiring import wiring  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
CHECKPOINT = REPO / "models" / "pusht_state"
FAILURE_MARKS = ("Traceback", "context is invalid", "Failed to publish log message", "terminate called")


class NodeProcess:
    """`python -m vqbet_ros.nodes.<module> --ros-args ...` with its output collected line by line."""

    def __init__(self, module: str, *ros_args: str):
        env = dict(os.environ, PYTHONUNBUFFERED="1", RCUTILS_LOGGING_BUFFERED_STREAM="0")
        self.proc = subprocess.Popen([sys.executable, "-m", f"vqbet_ros.nodes.{module}", "--ros-args", *ros_args],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True, env=env, start_new_session=True)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=lambda: self.lines.extend(self.proc.stdout), daemon=True)
        self._reader.start()

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def wait_for(self, pattern: str, timeout_s: float = 300.0) -> None:
        deadline = time.monotonic() + timeout_s
        while not any(re.search(pattern, line) for line in list(self.lines)):
            assert self.proc.poll() is None, f"exited early ({self.proc.returncode}):\n{self.output}"
            assert time.monotonic() < deadline, f"no line matching {pattern!r} in {timeout_s} s:\n{self.output}"
            time.sleep(0.1)

    def interrupt_twice(self) -> int:
        """SIGINT, then a second one while the node shuts down; the exit code."""
        self.proc.send_signal(signal.SIGINT)
        time.sleep(0.05)
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        rc = self.proc.wait(timeout=60)
        self._reader.join(timeout=10)
        return rc

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def test_sim_and_policy_processes_run_and_exit_0_on_double_sigint(tmp_path):
    spec = load_yaml(VQBeTConfig, CHECKPOINT / "config.yaml").spec
    params = tmp_path / "policy.yaml"
    params.write_text(yaml.safe_dump({"policy_node": {"ros__parameters": {
        "checkpoint": str(CHECKPOINT), "autostart": True, "enable_control": True, "device": "cpu",
        **wiring(spec)}}}))
    sim = NodeProcess("pusht_sim_node")
    policy = NodeProcess("policy_node", "--params-file", str(params))
    try:
        policy.wait_for(r"all inputs good: commands running")  # the worker thread is publishing chunks
        assert policy.interrupt_twice() == 0, policy.output
        assert sim.interrupt_twice() == 0, sim.output
    finally:
        sim.kill()
        policy.kill()
    for process in (sim, policy):
        for mark in FAILURE_MARKS:
            assert mark not in process.output, process.output


BAD_PARAMETERS = {  # case -> (node module, parameter given, texts its one error line must hold)
    "sim_string_for_float": ("pusht_sim_node", "lockstep_timeout_s:=soon", ("`lockstep_timeout_s`", "'soon'",
                                                                             "a number")),
    "sim_out_of_range": ("pusht_sim_node", "image_size:=4", ("`image_size`", "4", "[8, 1024]")),
    "replay_unknown_choice": ("replay_teleop_node", "message_type:=twist", ("`message_type`", "'twist'",
                                                                            "'joint_trajectory'")),
    "replay_missing_zarr": ("replay_teleop_node", "zarr_path:=/nonexistent/demos.zarr",
                            ("`zarr_path`", "/nonexistent/demos.zarr", "Diffusion Policy PushT zarr")),
    "recorder_renamed": ("recorder_node", "camera_topics:=[/cam]", ("`camera_topics`", "`cameras.<name>.topic`")),
    "sim_renamed": ("pusht_sim_node", "autostart:=false", ("`autostart`", "`first_episode_at_start`")),
}


def test_sim_replay_and_recorder_processes_exit_2_with_one_line_naming_a_bad_parameter():
    """A wrong parameter given on the command line ends the process at start with exit code 2 and one error line
    that names the parameter, the value and what is expected, without a traceback."""
    processes = {case: NodeProcess(module, "-p", param) for case, (module, param, _) in BAD_PARAMETERS.items()}
    try:
        for case, process in processes.items():  # started together: they load at the same time
            assert process.proc.wait(timeout=180) == 2, f"{case}:\n{process.output}"
            process._reader.join(timeout=10)
            errors = [line for line in process.lines if "[ERROR]" in line]
            assert len(errors) == 1, f"{case}:\n{process.output}"
            for text in BAD_PARAMETERS[case][2]:
                assert text in errors[0], f"{case}: {text!r} not in {errors[0]!r}"
            assert "Traceback" not in process.output, f"{case}:\n{process.output}"
    finally:
        for process in processes.values():
            process.kill()


def test_teleop_process_that_gives_up_exits_1_naming_why(ros_context):
    """A teleop that cannot go on (here the sim refuses the demo's initial state) stops with exit code 1 and an
    error line that says why, so a launch file or a script sees that no demo was recorded."""
    from rcl_interfaces.msg import SetParametersResult
    from rclpy.node import Node
    from std_srvs.srv import Trigger

    from ros_spin import Spinner

    sim = Node("fake_pusht_sim", context=ros_context)
    sim.declare_parameter("initial_state", [0.0] * 5)
    sim.add_on_set_parameters_callback(lambda params: SetParametersResult(successful=False,
                                                                          reason="the agent is inside the block"))
    sim.create_service(Trigger, "fake_pusht_sim/reset", lambda request, response: response)
    spinner = Spinner(ros_context, [sim])
    teleop = NodeProcess("replay_teleop_node", "-p", "sim_node:=fake_pusht_sim")
    try:
        rc = teleop.proc.wait(timeout=180)
        teleop._reader.join(timeout=10)
    finally:
        teleop.kill()
        spinner.stop()
        sim.destroy_node()
    assert rc == 1, teleop.output
    assert "the sim refused `initial_state`: the agent is inside the block; replay stopped" in teleop.output
    assert "Traceback" not in teleop.output
