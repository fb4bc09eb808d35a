"""Fault soak of the recorder node: random start/stop/discard while the robot's streams misbehave.

    ROS_DOMAIN_ID=61 .venv/bin/python bench/fault_soak_recorder.py --duration-s 600

One process: a fake robot (a 64x48 camera, joint states and a JointState teleop command at 30 Hz), the recorder
node and a service client, spun by one executor. Every 0.2-1.5 s the driver either calls start/stop/discard at
random or injects a fault for a random 0.1-2 s: NaN or inf joint values, a camera resolution change, a wrong-size
message (a joint missing), dropped streams, bursts of 30 messages, stamps jumping 5 s ahead. At the end the
recorder is deactivated and cleaned up, then every saved episode is read with our reader AND with pyarrow (data
parquet) and PyAV (mp4 frame count = episode length), the dataset must hold nothing but its own files, and the
recorder's log must hold no "NOT saved". A JSON summary is the last line.
"""
from __future__ import annotations

import argparse
import json
import random
import resource
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import av
import numpy as np
import pyarrow.parquet as pq
import rclpy
from rcl_interfaces.msg import Log
from rclpy.executors import MultiThreadedExecutor
from rclpy.lifecycle import TransitionCallbackReturn
from rclpy.node import Node
from rclpy.parameter import Parameter
from sensor_msgs.msg import Image, JointState
from std_srvs.srv import Trigger

from vqbet_ros import constants
from vqbet_ros.data.lerobot_reader import LeRobotDataset
from vqbet_ros.nodes.recorder_node import RecorderNode

H, W, JOINTS = 48, 64, ["a", "b"]
FAULTS = ["nan", "inf", "resolution", "wrong_size", "drop", "burst", "stamp_jump"]


class FaultyRobot(Node):
    def __init__(self, context):
        super().__init__("faulty_robot", context=context)
        self.cam = self.create_publisher(Image, "cam", 10)
        self.state = self.create_publisher(JointState, "joint_states", 10)
        self.action = self.create_publisher(JointState, "leader", 10)
        self.fault: str | None = None
        self.k = 0
        self.create_timer(1 / 30, self.publish)

    def publish(self, burst: int = 1) -> None:
        fault = self.fault
        if fault == "drop":
            return
        for _ in range(30 if fault == "burst" else 1):
            self.k += 1
            now = self.get_clock().now()
            stamp = (now + rclpy.duration.Duration(seconds=5.0) if fault == "stamp_jump" else now).to_msg()
            h, w = (2 * H, 2 * W) if fault == "resolution" else (H, W)
            img = Image(height=h, width=w, encoding="rgb8", step=w * 3)
            img.data = np.full((h, w, 3), self.k % 256, np.uint8).tobytes()
            img.header.stamp = stamp
            value = {"nan": float("nan"), "inf": float("inf")}.get(fault, float(self.k))
            names = JOINTS[:1] if fault == "wrong_size" else JOINTS
            js = JointState(name=names, position=[value] * len(names))
            js.header.stamp = stamp
            cmd = JointState(name=JOINTS, position=[-float(self.k)] * 2)
            cmd.header.stamp = stamp
            self.cam.publish(img)
            self.state.publish(js)
            self.action.publish(cmd)


def check_dataset(root: Path) -> dict:
    """Every episode through our reader, pyarrow and PyAV; and nothing on disk but the dataset's own files."""
    ds = LeRobotDataset(root)
    key = constants.image_key("cam")
    expected = {root / ".writer.lock", root / "meta" / "info.json", root / "meta" / "stats.json",
                root / "meta" / "tasks.parquet"}
    expected |= set((root / "meta" / "episodes").glob("chunk-*/file-*.parquet"))
    for e in ds.episodes:
        n = int(e["length"])
        data = root / ds.info["data_path"].format(chunk_index=e["data/chunk_index"], file_index=e["data/file_index"])
        video = root / ds.info["video_path"].format(video_key=key, chunk_index=e[f"videos/{key}/chunk_index"],
                                                     file_index=e[f"videos/{key}/file_index"])
        expected |= {data, video}
        assert len(ds.read_episode_column(constants.STATE, e["episode_index"])) == n
        assert np.isfinite(ds.read_episode_column(constants.STATE, e["episode_index"])).all()
        assert len(ds.decode_video(key, e["episode_index"])) == n
        assert pq.read_table(data).num_rows == n, data
        with av.open(str(video)) as container:
            assert sum(1 for _ in container.decode(video=0)) == n, video
    on_disk = {p for p in root.rglob("*") if p.is_file()}
    extra = sorted(str(p) for p in on_disk - expected)
    assert not extra, f"files that belong to no episode: {extra[:10]}"
    return {"episodes": ds.num_episodes, "frames": ds.num_frames}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration-s", type=float, default=600.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    root = Path(tempfile.mkdtemp(prefix="fault_soak_recorder_"))
    context = rclpy.context.Context()
    rclpy.init(context=context)
    robot = FaultyRobot(context)
    params = {"root": str(root), "dataset_name": "soak", "task": "soak", "fps": 30, "camera_names": ["cam"],
              "cameras.cam.topic": "cam", "joint_states_topic": "joint_states", "action_topic": "leader",
              "joint_names": JOINTS, "video_codec": "libx264", "sample_delay_s": 0.1, "joint_max_age_s": 0.3,
              "action_max_age_s": 0.3, "image_max_age_s": 0.3, "reject_stale_fraction": 0.5}
    recorder = RecorderNode(context=context, parameter_overrides=[Parameter(k, value=v) for k, v in params.items()])
    client = Node("soak_client", context=context)
    logs: list[str] = []
    client.create_subscription(Log, "/rosout", lambda m: logs.append(m.msg), 1000)
    clients = {n: client.create_client(Trigger, f"/recorder/{n}") for n in ("start_episode", "stop_episode",
                                                                             "discard_episode")}
    executor = MultiThreadedExecutor(num_threads=4, context=context)
    for node in (robot, recorder, client):
        executor.add_node(node)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    assert recorder.trigger_configure() == TransitionCallbackReturn.SUCCESS
    assert recorder.trigger_activate() == TransitionCallbackReturn.SUCCESS
    rss_start = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    calls, faults, unanswered = Counter(), Counter(), 0
    t_end = time.monotonic() + args.duration_s
    while time.monotonic() < t_end:
        if rng.random() < 0.5:
            name = rng.choice(["start_episode", "start_episode", "stop_episode", "discard_episode"])
            future = clients[name].call_async(Trigger.Request())
            deadline = time.monotonic() + 10
            while not future.done() and time.monotonic() < deadline:
                time.sleep(0.01)
            if future.done():
                calls[f"{name}:{'ok' if future.result().success else 'refused'}"] += 1
            else:
                unanswered += 1
            time.sleep(rng.uniform(0.2, 1.5))
        else:
            fault = rng.choice(FAULTS)
            faults[fault] += 1
            robot.fault = fault
            time.sleep(rng.uniform(0.1, 2.0))
            robot.fault = None
            time.sleep(0.3)
    alive = spinner.is_alive()
    assert recorder.trigger_deactivate() == TransitionCallbackReturn.SUCCESS
    assert recorder.trigger_cleanup() == TransitionCallbackReturn.SUCCESS
    time.sleep(1.0)  # the last /rosout lines
    executor.shutdown()
    summary = {
        "duration_s": args.duration_s, "executor_alive_at_end": alive, "unanswered_calls": unanswered,
        "calls": dict(calls), "faults": dict(faults),
        "saved_log_lines": sum(" saved: " in line for line in logs),
        "not_saved_log_lines": sum("NOT saved" in line for line in logs),
        "ended_early": sum("episode ended after" in line for line in logs),
        "rejected": sum("rejected" in line for line in logs),
        "rss_mb_start_end": [round(rss_start / 1024), round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)],
        "dataset": check_dataset(root / "soak"), "root": str(root),
    }
    assert summary["not_saved_log_lines"] == 0 and alive and unanswered == 0
    assert summary["dataset"]["episodes"] == summary["saved_log_lines"], summary
    print(json.dumps(summary))
    rclpy.shutdown(context=context)


if __name__ == "__main__":
    main()
