"""Recorder node with real rclpy publishers: 2 cameras (raw + compressed) + joint states + teleop command at
30 Hz; episodes recorded through the services and read back with our reader."""
import json
import threading
import time
from pathlib import Path

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy")
cv2 = pytest.importorskip("cv2")

from rcl_interfaces.msg import Log  # noqa: E402
from rclpy.executors import MultiThreadedExecutor, SingleThreadedExecutor  # noqa: E402
from rclpy.lifecycle import TransitionCallbackReturn  # noqa: E402
from rclpy.node import Node  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data  # noqa: E402
from rclpy.time import Time  # noqa: E402
from sensor_msgs.msg import CompressedImage, Image, JointState  # noqa: E402
from std_srvs.srv import Trigger  # noqa: E402
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint  # noqa: E402

from vqbet_ros import constants  # noqa: E402
from vqbet_ros.data.lerobot_reader import LeRobotDataset  # noqa: E402
from vqbet_ros.nodes import record_keys  # noqa: E402
from vqbet_ros.nodes.recorder_node import RecorderNode  # noqa: E402

FPS = 30
H, W = 48, 64
JOINTS = ["shoulder", "elbow"]


def _image(k: int) -> np.ndarray:
    """Smooth gradients (like camera content; no wrap-around edges), different for every k."""
    yy, xx = np.mgrid[0:H, 0:W]
    return np.stack([40 + xx * 2 + (k % 20) * 3, 30 + yy * 3 + (k % 7) * 10, np.full_like(xx, 20 + (k * 11) % 200)],
                    axis=-1).astype(np.uint8)


class FakeRobot(Node):
    """Publishes every stream at 30 Hz; message k carries values derived from k, and logs (stamp, k)."""

    def __init__(self, context, publish_wrist: bool = True, wrist_best_effort: bool = False,
                 use_sim_time: bool = False):
        super().__init__("fake_robot", context=context,
                         parameter_overrides=[Parameter("use_sim_time", value=use_sim_time)])
        self.front = self.create_publisher(Image, "cam/front/image_raw", 5)
        self.wrist = self.create_publisher(CompressedImage, "cam/wrist/image_raw/compressed",
                                           qos_profile_sensor_data if wrist_best_effort else 5)
        self.state = self.create_publisher(JointState, "joint_states", 5)
        self.action = self.create_publisher(JointTrajectory, "leader/joint_trajectory", 5)
        self.publish_wrist = publish_wrist
        # Faults a test may switch on while running:
        self.front_hw = (H, W)  # the front camera's resolution
        self.nan_state = False  # NaN joint positions
        self.state_names = list(reversed(JOINTS))  # publisher order differs from the recorder's
        self.log: list[tuple[float, int]] = []
        self.nan_ks: set[int] = set()  # k of the messages published with NaN joint positions
        self.k = 0
        self.create_timer(1.0 / 30, self.publish)

    def publish(self):
        k, now = self.k, self.get_clock().now()
        stamp = now.to_msg()
        rgb = _image(k)
        front = rgb if self.front_hw == (H, W) else np.zeros((*self.front_hw, 3), np.uint8)
        img = Image(height=front.shape[0], width=front.shape[1], encoding="bgr8", step=front.shape[1] * 3)
        img.data = front[:, :, ::-1].tobytes()  # drivers often publish bgr8
        img.header.stamp = stamp
        self.front.publish(img)
        if self.publish_wrist:
            jpeg = CompressedImage(format="png")
            jpeg.data = cv2.imencode(".png", rgb[::-1, :, ::-1])[1].tobytes()  # wrist = front flipped
            jpeg.header.stamp = stamp
            self.wrist.publish(jpeg)
        value = {"shoulder": float(k), "elbow": -float(k)}
        js = JointState(name=self.state_names,
                        position=[float("nan") if self.nan_state else value[n] for n in self.state_names])
        js.header.stamp = stamp
        if self.nan_state:
            self.nan_ks.add(k)
        self.state.publish(js)
        traj = JointTrajectory(joint_names=JOINTS, points=[JointTrajectoryPoint(positions=[k + 0.5, k + 0.25])])
        traj.header.stamp = stamp
        self.action.publish(traj)
        self.log.append((now.nanoseconds * 1e-9, k))
        self.k += 1


def _params(root: Path, **extra):
    values = {
        "root": str(root), "dataset_name": "demo", "task": "push the T", "robot_type": "fake", "fps": FPS,
        "camera_names": ["front", "wrist"],
        "cameras.front.topic": "cam/front/image_raw",
        "cameras.wrist.topic": "cam/wrist/image_raw/compressed", "cameras.wrist.compressed": True,
        "joint_states_topic": "joint_states", "action_topic": "leader/joint_trajectory",
        "action_type": "joint_trajectory",
        "joint_names": JOINTS, "joint_max_age_s": 0.5, "action_max_age_s": 0.5, "image_max_age_s": 0.5,
        # Generous on a loaded 2-core CI machine, where a callback can wait a few tenths of a second for a core:
        # every message stamped <= a tick has arrived when the tick is sampled (a late one would be sampled
        # as the previous message, and the data checks below would fail).
        "sample_delay_s": 0.5,
        # A margin over the 30 dB the frame checks ask for (a starved robot skips k: frames differ more).
        "video_crf": 20,
        **extra,
    }
    return [Parameter(k, value=v) for k, v in values.items()]


class Harness:
    """Fake robot + recorder node (unless `with_recorder=False`: it runs elsewhere) + service client, spun by
    one multi-threaded executor in a background thread."""

    def __init__(self, context, root: Path, publish_wrist=True, wrist_best_effort=False, with_recorder=True,
                 **extra):
        self.robot = FakeRobot(context, publish_wrist, wrist_best_effort, extra.get("use_sim_time", False))
        self.recorder = RecorderNode(context=context, parameter_overrides=_params(root, **extra)) \
            if with_recorder else None
        self.client = Node("test_client", context=context)
        self.logs: list[str] = []  # every /rosout line, to check what the recorder told its operator
        # Deep queue: every node of the process logs to /rosout, and on a loaded machine a short queue can drop
        # the one line a test waits for before the executor thread takes it. Transient local, as the nodes'
        # /rosout publishers are: a line logged before discovery matched the two (seconds, on a loaded machine)
        # still arrives.
        rosout_qos = QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE,
                                durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self.client.create_subscription(Log, "/rosout", lambda m: self.logs.append(m.msg), rosout_qos)
        self.clients = {n: self.client.create_client(Trigger, f"/recorder/{n}")
                        for n in ("start_episode", "stop_episode", "discard_episode")}
        self.executor = MultiThreadedExecutor(num_threads=4, context=context)
        for node in self.nodes:
            self.executor.add_node(node)
        self.thread = threading.Thread(target=self.executor.spin, daemon=True)
        self.thread.start()

    def call(self, name: str, timeout: float = 60.0, may_be_lost: bool = False
             ) -> tuple[float, float, Trigger.Response | None]:
        """(time the request was sent, time the reply was in, reply); times on the clock of the recorder when it
        runs here (its episode stamps are on that clock), else of the robot. The reply is None when none came
        within `timeout` and `may_be_lost` (see `_activate`)."""
        clock = (self.recorder or self.robot).get_clock()
        client = self.clients[name]
        assert client.wait_for_service(timeout_sec=30.0)
        sent = clock.now().nanoseconds * 1e-9
        future = client.call_async(Trigger.Request())
        deadline = time.monotonic() + timeout  # generous: a starved executor may answer only after seconds
        while not future.done() and time.monotonic() < deadline:
            time.sleep(0.005)
        received = clock.now().nanoseconds * 1e-9
        assert future.done() or may_be_lost, f"/recorder/{name} did not answer within {timeout} s"
        return sent, received, future.result() if future.done() else None

    @property
    def nodes(self):
        return [n for n in (self.robot, self.recorder, self.client) if n is not None]

    def close(self):
        self.executor.shutdown()
        self.thread.join(timeout=5)
        for node in self.nodes:
            node.destroy_node()


def _wait_until(condition, timeout: float = 30.0) -> None:
    """Poll `condition` until it holds; the timeout only bounds a test that would otherwise hang."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def _activate(h: Harness) -> None:
    """Configure, make sure every service has answered this client once, activate.

    The first reply to a new client is lost when the server sends it before it has discovered the client's
    reply reader (Fast DDS waits 100 ms for that; discovery takes longer on a loaded machine). An inactive
    recorder only refuses, so asking again is harmless; a lost reply to a start would hide that it started."""
    assert h.recorder.trigger_configure() == TransitionCallbackReturn.SUCCESS
    for name in h.clients:
        _wait_until(lambda: h.call(name, timeout=2.0, may_be_lost=True)[2] is not None, timeout=60.0)
    assert h.recorder.trigger_activate() == TransitionCallbackReturn.SUCCESS


def _start_until(h: Harness, wanted=lambda reply: reply.success, timeout: float = 30.0
                 ) -> tuple[float, float, Trigger.Response]:
    """Ask for an episode until the reply is `wanted` (by default: started), and return `h.call`'s answer.

    Instead of a fixed sleep after activation: publishers are discovered and streams arrive when the machine
    lets them. A start that succeeds although the test waits for a refusal is discarded before asking again."""
    deadline = time.monotonic() + timeout
    while True:
        answer = h.call("start_episode")
        reply = answer[2]
        if wanted(reply):
            return answer
        if reply.success:
            assert h.call("discard_episode")[2].success
        assert time.monotonic() < deadline, f"no start reply as expected in {timeout} s; last: {reply.message!r}"
        time.sleep(0.05)


def _logged(h: Harness, text: str) -> bool:
    return any(text in line for line in h.logs)


def _published_at(log, t: float) -> tuple[float, int]:
    """(stamp, k) of the latest published message stamped <= t."""
    stamps = np.array([s for s, _ in log])
    i = np.searchsorted(stamps, t, side="right") - 1
    assert i >= 0
    return log[i]


def _expected_k(log, t: float) -> int:
    return _published_at(log, t)[1]


def _ticks(episode) -> list[float]:
    return [episode["recorder/start_stamp_s"] + i / FPS for i in range(episode["length"])]


def _old_ticks(log, ticks, max_age_s: float = 0.5) -> list[int]:
    """Indices of the ticks at which the latest message is older than the max age: a starved publisher (every
    stream is published in the same callback, so all go stale together)."""
    return [i for i, t in enumerate(ticks) if t - _published_at(log, t)[0] > max_age_s]


def _psnr(a, b) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def test_recorder_records_episodes_that_match_what_was_published(ros_context, tmp_path):
    h = Harness(ros_context, tmp_path)
    try:
        _activate(h)
        windows = []
        for duration, keep in [(0.6, True), (0.3, False), (0.4, True), (0.5, True)]:
            start_sent, _, start = _start_until(h)  # streams discovered and fresh (a starved robot may lag)
            time.sleep(duration)
            stop_sent, stop_received, stop = h.call("stop_episode" if keep else "discard_episode")
            assert stop.success, stop.message
            if keep:
                windows.append((start_sent, stop_sent, stop_received))
        assert h.recorder.trigger_deactivate() == TransitionCallbackReturn.SUCCESS
        assert h.recorder.trigger_cleanup() == TransitionCallbackReturn.SUCCESS  # waits for every save
    finally:
        h.close()

    ds = LeRobotDataset(tmp_path / "demo")
    assert ds.num_episodes == 3 and ds.fps == FPS
    assert ds.features[constants.STATE]["names"] == JOINTS
    state, action = ds.read_column(constants.STATE), ds.read_column(constants.ACTION)
    for episode, (start_sent, stop_sent, stop_received) in zip(ds.episodes, windows):
        t0 = episode["recorder/start_stamp_s"]
        assert start_sent <= t0 <= stop_sent
        # Every tick t0 + k/fps up to the stop request is kept: duration x fps, +-1 for where stop landed.
        assert (stop_sent - t0) * FPS <= episode["length"] <= (stop_received - t0) * FPS + 1
        # ... and exactly one row per tick from start to the instant the recorder handled the stop.
        assert episode["length"] == int(np.floor((episode["recorder/stop_stamp_s"] - t0) * FPS + 1e-9)) + 1
        # Stale: exactly the ticks at which the robot had published nothing for the max age (none, unless the
        # machine starved its timer); a late recorder timer samples from the history and makes no frame stale.
        assert episode["recorder/stale_frames"] == len(_old_ticks(h.robot.log, _ticks(episode))), (episode, h.logs)
        lo, hi = episode["dataset_from_index"], episode["dataset_to_index"]
        ks = [_expected_k(h.robot.log, t) for t in _ticks(episode)]
        np.testing.assert_array_equal(state[lo:hi], np.array([[k, -k] for k in ks], np.float32))
        np.testing.assert_array_equal(action[lo:hi], np.array([[k + 0.5, k + 0.25] for k in ks], np.float32))
        front = ds.decode_video(constants.image_key("front"), episode["episode_index"])
        wrist = ds.decode_video(constants.image_key("wrist"), episode["episode_index"])
        assert len(front) == len(wrist) == episode["length"]
        for i, k in enumerate(ks):
            assert _psnr(front[i], _image(k)) >= 30
            assert _psnr(wrist[i], _image(k)[::-1]) >= 30
    stats = ds.stats
    np.testing.assert_allclose(stats[constants.STATE]["min"], state.min(0))
    np.testing.assert_allclose(stats[constants.STATE]["max"], state.max(0))
    np.testing.assert_allclose(stats[constants.ACTION]["mean"], action.astype(np.float64).mean(0), rtol=1e-5)
    assert stats[constants.STATE]["count"].tolist() == [ds.num_frames]


def test_recorder_samples_on_the_node_clock_with_sim_time(ros_context, tmp_path):
    """With use_sim_time the grid, the stamps and the stop all follow /clock (here 1000 s + 0.5 x wall time)."""
    from rosgraph_msgs.msg import Clock

    clock_node = Node("fake_clock", context=ros_context)
    clock_pub = clock_node.create_publisher(Clock, "/clock", 10)
    running = True
    origin = time.monotonic()

    def publish_clock():
        while running:
            sim_ns = int((1000.0 + 0.5 * (time.monotonic() - origin)) * 1e9)
            clock_pub.publish(Clock(clock=Time(nanoseconds=sim_ns).to_msg()))
            time.sleep(0.002)

    ticker = threading.Thread(target=publish_clock, daemon=True)
    ticker.start()
    h = Harness(ros_context, tmp_path, use_sim_time=True)
    try:
        _activate(h)
        start_sent, start_received, _ = _start_until(h)  # times on the recorder's (sim) clock
        # 0.6 s of the recorder's sim time (about 1.2 s of wall time, more when /clock reaches it late).
        _wait_until(lambda: h.recorder.get_clock().now().nanoseconds * 1e-9 >= start_received + 0.6)
        stop_sent, stop_received, stop = h.call("stop_episode")
        assert stop.success
        wall_at_stop = time.monotonic()
        assert h.recorder.trigger_deactivate() == TransitionCallbackReturn.SUCCESS
        assert h.recorder.trigger_cleanup() == TransitionCallbackReturn.SUCCESS
    finally:
        running = False
        ticker.join()
        h.close()
        clock_node.destroy_node()
    episode = LeRobotDataset(tmp_path / "demo").episodes[0]
    t0, t_stop = episode["recorder/start_stamp_s"], episode["recorder/stop_stamp_s"]
    # Stamped when the services were handled, on the recorder's clock ...
    assert start_sent <= t0 <= start_received and stop_sent <= t_stop <= stop_received
    # ... which is /clock's (half the wall rate from 1000 s, never ahead of what was published), not the wall.
    assert 1000.0 < t0 and t_stop <= 1000.0 + 0.5 * (wall_at_stop - origin)
    assert t_stop - t0 >= 0.6
    assert episode["length"] == int(np.floor((t_stop - t0) * FPS + 1e-9)) + 1
    assert episode["recorder/stale_frames"] == len(_old_ticks(h.robot.log, _ticks(episode))), (episode, h.logs)
    state = LeRobotDataset(tmp_path / "demo").read_column(constants.STATE)
    ks = [_expected_k(h.robot.log, t) for t in _ticks(episode)]
    np.testing.assert_array_equal(state, np.array([[k, -k] for k in ks], np.float32))


def test_recorder_refuses_start_naming_the_stale_camera(ros_context, tmp_path):
    h = Harness(ros_context, tmp_path, publish_wrist=False)
    try:
        _activate(h)
        # Until every published stream has arrived and is fresh, the refusal names those too; then only wrist.
        only_wrist = "not started, stale stream(s): camera `wrist` (cam/wrist/image_raw/compressed): never received"
        reply = _start_until(h, lambda r: r.message == only_wrist)[2]
        assert not reply.success
        _, _, reply = h.call("stop_episode")
        assert not reply.success
    finally:
        h.recorder.trigger_deactivate()
        h.recorder.trigger_cleanup()
        h.close()
    assert not (tmp_path / "demo" / "meta" / "info.json").exists()  # nothing was recorded


def test_recorder_start_refusal_explains_best_effort_publisher(ros_context, tmp_path):
    h = Harness(ros_context, tmp_path, wrist_best_effort=True)
    try:
        _activate(h)
        # The hint needs the publisher to be discovered: "nobody publishes" until then.
        reply = _start_until(h, lambda r: "is published BEST_EFFORT" in r.message)[2]
        assert not reply.success and "camera `wrist` (cam/wrist/image_raw/compressed): never received" in reply.message
        assert "`cam/wrist/image_raw/compressed` is published BEST_EFFORT; set stream_qos: best_effort" in reply.message
    finally:
        h.recorder.trigger_deactivate()
        h.recorder.trigger_cleanup()
        h.close()


@pytest.mark.parametrize(
    "extra",
    [
        {"dataset_name": ""},
        {"cameras.front.topic": ""},
        {"joint_names": ["shoulder", "shoulder"]},
        {"action_type": "Twist"},
        {"cameras.wrist.compressed": "theora"},
        {"low_dim_names": ["pose"], "low_dim.pose.type": "Pose"},
        {"stream_qos": "fast"},
    ],
)
def test_recorder_configure_fails_on_bad_parameters(ros_context, tmp_path, extra):
    node = RecorderNode(context=ros_context, parameter_overrides=_params(tmp_path, **extra))
    try:
        assert node.trigger_configure() == TransitionCallbackReturn.FAILURE
    finally:
        node.destroy_node()


def test_recorder_services_refuse_when_inactive(ros_context, tmp_path):
    node = RecorderNode(context=ros_context, parameter_overrides=_params(tmp_path))
    try:
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        reply = node._start_cb(Trigger.Request(), Trigger.Response())
        assert not reply.success and "not active" in reply.message
        assert node.trigger_cleanup() == TransitionCallbackReturn.SUCCESS
    finally:
        node.destroy_node()


@pytest.mark.parametrize("key, service", [("s", "start_episode"), (" ", "start_episode"), ("E", "stop_episode"),
                                          ("\n", "stop_episode"), ("d", "discard_episode"), ("z", None)])
def test_record_keys_maps_keys_to_services(key, service):
    assert record_keys.service_for_key(key) == service


def test_record_keys_client_calls_recorder_services(ros_context, tmp_path):
    h = Harness(ros_context, tmp_path, publish_wrist=False)
    keys = record_keys.RecordKeysClient("/recorder", context=ros_context)
    try:
        assert h.recorder.trigger_configure() == TransitionCallbackReturn.SUCCESS
        # Inactive: the recorder's own refusal comes back. Asked again while "did not answer": the first reply
        # to a new client can be lost on a loaded machine (see `_activate`).
        ok, message = keys.call("discard_episode", timeout_s=2.0)
        deadline = time.monotonic() + 60
        while "did not answer" in message and time.monotonic() < deadline:
            ok, message = keys.call("discard_episode", timeout_s=2.0)
        assert not ok and "not active" in message
    finally:
        h.recorder.trigger_cleanup()
        keys.destroy_node()
        h.close()


def test_recorder_yaml_documents_every_parameter_and_configures(ros_context, tmp_path):
    import yaml
    from ros_spin import flat_parameters

    from vqbet_ros.nodes.recorder_node import PARAMETERS

    path = Path(__file__).resolve().parents[1] / "config" / "recorder.yaml"
    text = path.read_text()
    values = dict(flat_parameters(yaml.safe_load(text)["recorder"]["ros__parameters"]))
    assert [name for name in PARAMETERS if f" {name}:" not in text] == []  # set or shown commented out
    values.update(root=str(tmp_path))
    overrides = [Parameter(k, value=v) for k, v in values.items() if k != "use_sim_time"]
    node = RecorderNode(context=ros_context, parameter_overrides=overrides)
    try:
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        # every parameter of the file is one the node reads (the camera blocks are declared at configure)
        assert [name for name in values if not node.has_parameter(name)] == []
        assert node.trigger_cleanup() == TransitionCallbackReturn.SUCCESS
    finally:
        node.destroy_node()


@pytest.mark.slow
def test_recorder_node_killed_mid_episode_keeps_saved_ones_and_restart_appends(ros_context, tmp_path):
    """recorder_node in a subprocess: one episode saved, a second one open, SIGKILL; a new recorder appends."""
    import json
    import os
    import signal
    import subprocess
    import sys

    import yaml

    params = {p.name: p.value for p in _params(tmp_path)}
    params_file = tmp_path / "recorder.yaml"
    params_file.write_text(yaml.safe_dump({"recorder": {"ros__parameters": {**params, "autostart": True}}}))
    proc = subprocess.Popen([sys.executable, "-m", "vqbet_ros.nodes.recorder_node", "--ros-args",
                             "--params-file", str(params_file)], env=os.environ.copy(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    h = Harness(ros_context, tmp_path, with_recorder=False)  # the recorder lives in the subprocess
    info = tmp_path / "demo" / "meta" / "info.json"
    partial = tmp_path / "demo" / ".partial"
    try:
        assert h.clients["start_episode"].wait_for_service(timeout_sec=30)
        _start_until(h, timeout=60)  # until the subprocess is active and streams are fresh
        time.sleep(0.5)
        assert h.call("stop_episode")[2].success
        _wait_until(lambda: info.is_file() and json.loads(info.read_text())["total_episodes"] == 1)
        _start_until(h)
        _wait_until(lambda: any(partial.rglob("*.mp4")))  # frames of the open episode reach the encoder's files
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()

    ds = LeRobotDataset(tmp_path / "demo")
    assert ds.num_episodes == 1
    assert len(ds.decode_video(constants.image_key("front"), 0)) == ds.episodes[0]["length"]
    assert any(partial.rglob("*.mp4"))  # the killed episode left partial files

    h.recorder = recorder = RecorderNode(context=ros_context, parameter_overrides=_params(tmp_path))
    h.executor.add_node(recorder)
    try:
        assert recorder.trigger_configure() == TransitionCallbackReturn.SUCCESS  # cleans the leftovers
        assert not any(partial.rglob("*"))
        assert recorder.trigger_activate() == TransitionCallbackReturn.SUCCESS
        _start_until(h)
        time.sleep(0.4)
        assert h.call("stop_episode")[2].success
        assert recorder.trigger_deactivate() == TransitionCallbackReturn.SUCCESS
        assert recorder.trigger_cleanup() == TransitionCallbackReturn.SUCCESS
    finally:
        h.close()
    ds = LeRobotDataset(tmp_path / "demo")
    assert ds.num_episodes == 2
    assert len(ds.decode_video(constants.image_key("wrist"), 1)) == ds.episodes[1]["length"]


@pytest.mark.slow
def test_record_keys_cli_drives_the_recorder_from_piped_keys(ros_context, tmp_path):
    import os
    import subprocess
    import sys

    # The CLI's start must not meet a stream that a starved robot left stale for a moment: this test is about keys.
    h = Harness(ros_context, tmp_path, joint_max_age_s=2.0, action_max_age_s=2.0, image_max_age_s=2.0)
    try:
        _activate(h)
        _start_until(h)  # every stream has arrived
        assert h.call("discard_episode")[2].success
        out = subprocess.run([sys.executable, "-m", "vqbet_ros.nodes.record_keys", "--node", "/recorder"],
                             input="s\nz\nd\nd\nq\ne\n", capture_output=True, text=True, timeout=60,
                             env=os.environ.copy()).stdout
        assert h.recorder.trigger_deactivate() == TransitionCallbackReturn.SUCCESS
        assert h.recorder.trigger_cleanup() == TransitionCallbackReturn.SUCCESS
    finally:
        h.close()
    replies = [line for line in out.splitlines() if line.endswith(")") or ": ok: " in line or "REFUSED" in line]
    assert replies[0].startswith("start_episode: ok: episode 0 started")
    assert replies[1].startswith("discard_episode: ok: episode discarded")
    assert replies[2] == "discard_episode: REFUSED: no episode is being recorded"
    assert len(replies) == 3  # `q` quit before the last key; `z` only printed the help
    assert out.count("[s/space]") == 2


@pytest.mark.parametrize("params, message", [
    ({"cameras.wrist.compressed": "yes"}, "parameter `cameras.wrist.compressed` is 'yes'; expected true or false"),
    ({"low_dim_names": ["pose"], "low_dim.pose.type": "PoseStamped"},
     "parameter `low_dim.pose.type` is 'PoseStamped'; expected one of 'float64_multi_array', 'pose_stamped'"),
    ({"action_type": "JointTrajectory"}, "`action_type` is 'JointTrajectory'; expected joint_state, "
                                         "joint_trajectory, float64_multi_array (`joint_trajectory` for"),
])
def test_recorder_config_refuses_a_bad_stream_parameter_naming_it(ros_context, tmp_path, params, message):
    node = RecorderNode(context=ros_context, parameter_overrides=_params(tmp_path, **params))
    try:
        with pytest.raises(ValueError) as err:
            node.read_config()
        assert message in str(err.value)
    finally:
        node.destroy_node()


@pytest.mark.parametrize("old, value, new", [
    ("camera_topics", ["/cam"], "`cameras.<name>.topic`"),
    ("camera_transports", ["compressed"], "`cameras.<name>.compressed: true`"),
    ("low_dim_topics", ["/pose"], "`low_dim.<name>.topic`"),
    ("low_dim_types", ["PoseStamped"], "`low_dim.<name>.type`"),
    ("state_topic", "/joint_states", "`joint_states_topic`"),
    ("state_max_age_s", 0.5, "`joint_max_age_s`"),
    ("camera_max_age_s", 0.5, "`image_max_age_s`"),
])
def test_recorder_refuses_a_renamed_parameter_naming_its_replacement(ros_context, tmp_path, old, value, new):
    """A parameter the recorder read under another name before is refused at start (the process exits 2 with
    this line, `entry.run_node`), not ignored."""
    with pytest.raises(ValueError) as err:
        RecorderNode(context=ros_context, parameter_overrides=_params(tmp_path, **{old: value}))
    assert f"parameter `{old}` is no longer read; set {new}" in str(err.value)


def test_recorder_ends_an_episode_whose_camera_changes_resolution_and_saves_every_other(ros_context, tmp_path):
    h = Harness(ros_context, tmp_path)
    try:
        _activate(h)
        _start_until(h)
        time.sleep(0.4)
        assert h.call("stop_episode")[2].success
        _start_until(h)  # while the first one is still being saved
        time.sleep(0.4)
        h.robot.front_hw = (2 * H, 2 * W)
        # The episode ends by itself; from then on a start is refused naming the stream and both sizes. Checked
        # through the service replies: /rosout lines can arrive late on a loaded machine.
        resized = f"camera `front` (cam/front/image_raw) publishes {2 * W}x{2 * H} images but the dataset"
        _wait_until(lambda: resized in h.call("start_episode")[2].message)
        reply = h.call("stop_episode")[2]  # the recorder is alive and says the episode has already ended
        assert not reply.success and "no episode is being recorded" in reply.message
        h.robot.front_hw = (H, W)
        _wait_until(lambda: h.call("start_episode")[2].success)
        time.sleep(0.3)
        assert h.call("stop_episode")[2].success
        assert h.recorder.trigger_deactivate() == TransitionCallbackReturn.SUCCESS
        assert h.recorder.trigger_cleanup() == TransitionCallbackReturn.SUCCESS
    finally:
        h.close()
    ds = LeRobotDataset(tmp_path / "demo")
    assert ds.num_episodes == 3 and all(e["length"] >= 5 for e in ds.episodes)
    for e in ds.episodes:
        for camera in ("front", "wrist"):
            assert len(ds.decode_video(constants.image_key(camera), e["episode_index"])) == e["length"]
    assert len(ds.read_column(constants.STATE)) == ds.num_frames


def test_recorder_keeps_nan_joint_states_out_of_the_dataset_and_counts_them(ros_context, tmp_path):
    h = Harness(ros_context, tmp_path)
    try:
        _activate(h)
        _start_until(h)
        time.sleep(0.3)
        h.robot.nan_state = True  # ten NaN joint states, then good ones again
        _wait_until(lambda: len(h.robot.nan_ks) >= 10)
        h.robot.nan_state = False
        k_good = h.robot.k
        _wait_until(lambda: h.robot.k >= k_good + 10)
        assert h.call("stop_episode")[2].success
        h.robot.nan_state = True
        reply = _start_until(h, lambda r: not r.success and "is not finite" in r.message)[2]
        assert reply.message == ("not started: the latest value of state (joint_states) is not finite "
                                 "(NaN or inf)")
        h.robot.nan_state = False
        assert h.recorder.trigger_deactivate() == TransitionCallbackReturn.SUCCESS
        assert h.recorder.trigger_cleanup() == TransitionCallbackReturn.SUCCESS
    finally:
        h.close()
    ds = LeRobotDataset(tmp_path / "demo")
    assert ds.num_episodes == 1
    episode = ds.episodes[0]
    ticks = _ticks(episode)
    ks = [_expected_k(h.robot.log, t) for t in ticks]
    nan_rows = [i for i, k in enumerate(ks) if k in h.robot.nan_ks]
    old_rows = _old_ticks(h.robot.log, ticks)
    assert len(nan_rows) >= 5 and 0 not in nan_rows
    # A NaN row keeps the previous row's state; every other row holds what was published at its tick.
    expected, previous = [], None
    for i, k in enumerate(ks):
        previous = previous if i in nan_rows else [k, -k]
        expected.append(previous)
    np.testing.assert_array_equal(ds.read_column(constants.STATE), np.array(expected, np.float32))
    # Counted: every NaN row (and any tick the robot was starved at) for the state. Another stream may have
    # stale frames of its own when a loaded machine delays its callbacks by seconds; the recorder counts those.
    stale_by_stream = json.loads(episode["recorder/stale_by_stream"])
    assert stale_by_stream[constants.STATE] == len(set(nan_rows) | set(old_rows)), (episode, h.logs)
    assert episode["recorder/stale_frames"] >= stale_by_stream[constants.STATE]


def test_recorder_start_refusal_names_the_type_the_teleop_topic_is_published_with(ros_context, tmp_path):
    # The leader publishes JointTrajectory on `leader/cmd` from another process (its own context: one process
    # cannot hold one topic under two types), while the recorder expects JointState there.
    leader_context = rclpy.context.Context()
    rclpy.init(context=leader_context)
    leader = Node("leader", context=leader_context)
    publisher = leader.create_publisher(JointTrajectory, "leader/cmd", 5)
    leader.create_timer(1.0 / 30, lambda: publisher.publish(
        JointTrajectory(joint_names=JOINTS, points=[JointTrajectoryPoint(positions=[0.0, 0.0])])))
    leader_executor = SingleThreadedExecutor(context=leader_context)
    leader_executor.add_node(leader)
    leader_thread = threading.Thread(target=leader_executor.spin, daemon=True)
    leader_thread.start()
    h = Harness(ros_context, tmp_path, action_topic="leader/cmd", action_type="joint_state")
    try:
        _activate(h)
        # The hint needs the leader to be discovered: "nobody publishes" until then.
        reply = _start_until(h, lambda r: "`leader/cmd` is published as" in r.message)[2]
        assert not reply.success and "action (leader/cmd): never received" in reply.message
        assert ("`leader/cmd` is published as trajectory_msgs/msg/JointTrajectory but the recorder subscribes "
                "sensor_msgs/msg/JointState; set `action_type` to match") in reply.message
    finally:
        h.recorder.trigger_deactivate()
        h.recorder.trigger_cleanup()
        h.close()
        leader_executor.shutdown()
        leader_thread.join(timeout=5)
        leader.destroy_node()
        rclpy.shutdown(context=leader_context)


def test_recorder_refuses_joint_states_that_name_a_joint_twice(ros_context, tmp_path):
    h = Harness(ros_context, tmp_path)
    h.robot.state_names = ["elbow", "shoulder", "elbow"]
    try:
        _activate(h)
        # Until the first joint state is in, the refusal only says it never arrived.
        reply = _start_until(h, lambda r: "messages on `joint_states` are refused" in r.message)[2]
        assert not reply.success and "state (joint_states)" in reply.message
        assert "messages on `joint_states` are refused" in reply.message
        assert "names joint(s) ['elbow'] more than once" in reply.message
    finally:
        h.recorder.trigger_deactivate()
        h.recorder.trigger_cleanup()
        h.close()
    assert not (tmp_path / "demo" / "meta").exists()


def test_second_recorder_on_the_same_fresh_root_fails_to_configure(ros_context, tmp_path):
    h = Harness(ros_context, tmp_path, publish_wrist=False)
    # Its own node name: two nodes named `recorder` would share one /rosout publisher (rcl keys them by name).
    second = RecorderNode(context=ros_context, parameter_overrides=_params(tmp_path),
                          cli_args=["--ros-args", "-r", "__node:=second_recorder"])
    try:
        assert h.recorder.trigger_configure() == TransitionCallbackReturn.SUCCESS
        assert second.trigger_configure() == TransitionCallbackReturn.FAILURE
        _wait_until(lambda: _logged(h, "configure failed: `") and _logged(h, "is being written by another process"))
        assert h.recorder.trigger_cleanup() == TransitionCallbackReturn.SUCCESS
        assert second.trigger_configure() == TransitionCallbackReturn.SUCCESS  # the root was released
        assert second.trigger_cleanup() == TransitionCallbackReturn.SUCCESS
    finally:
        second.destroy_node()
        h.close()
