"""Fault-injection soak of the policy node: 30 Hz, random input and operator faults, every output checked.

    nice -n 15 .venv/bin/python bench/fault_soak.py                       # 10 minutes
    nice -n 15 .venv/bin/python bench/fault_soak.py --duration-s 60 --json soak.json

The policy node runs in its own process (`policy_node` with autostart, control enabled, commands on) on a
small untrained checkpoint at 30 Hz with two cameras (`front` raw Image, `wrist` CompressedImage PNG),
joint states and a PoseStamped low-dim input. This process publishes every input at 30 Hz and, at random,
starts one fault at a time for 1.5-3 s, then returns to good inputs for 2-4 s:
- content: NaN / inf / 1e30 joint, NaN / 1e30 pose, duplicate or missing joint names, truncated raw image,
  undecodable and oversized (PNG decompression bomb) compressed images;
- timing: a stream dropped, a wrong message type on the joint topic instead of JointState, stamps 900 s back
  or ahead, out-of-order stamps;
- harmless (commands may go on): bursts of 50 good joint messages, a camera changing resolution;
- operator: `~/enable` off then on.
A checker hears every output in arrival order. Reported: commands published during a fault, must be 0, at two
levels:
- chunks: a trajectory stamped (its tick time, when its inputs were sampled) inside a fault window after its
  grace, or received after a disable's hold and stamped before the next enable;
- forward commands (`~/commands`): `Float64MultiArray` has no stamp, so each is dated by the chunk that
  produced it. The node publishes a tick's chunk and then its command (plan[0], the chunk's first point)
  under one lock, so the command is matched to the chunk whose first point it equals; it is a violation
  when that chunk is one. A command that matches no chunk is reported on its own (must be 0).
  Dating commands by their arrival here instead counts a command computed from good inputs before a fault
  and delivered after it began (a tick's inference takes up to a second on a starved CPU); that count is
  reported as `commands_by_arrival` for comparison, not judged.
Also reported: faults per class, recoveries (first chunk after a fault ends) and their time, the node's
resident memory at start and end, decisions per second. Violations are counted with two graces after a fault
starts (`GRACE_S`: strict for an idle machine, loaded for a starved one).
"""
from __future__ import annotations

import argparse
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import rclpy
import torch
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseStamped
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CompressedImage, Image, JointState
from std_msgs.msg import Float64MultiArray, String
from std_srvs.srv import SetBool
from trajectory_msgs.msg import JointTrajectory

from vqbet_ros import constants
from vqbet_ros.config_io import from_dict
from vqbet_ros.model.checkpoint import save_checkpoint
from vqbet_ros.model.config import VQBeTConfig
from vqbet_ros.model.policy import VQBeTPolicy

FPS = 30.0
JOINTS = ["shoulder", "elbow"]
MAX_AGE_S = {"image": 0.2, "joint": 0.1, "low_dim": 0.2}
RELIABLE = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
# A chunk stamped (tick time) this soon after a fault starts may come from a tick that ran before the faulty
# message reached the node: delivery + one tick on an idle machine (strict), and with the input lag of a
# CPU-starved node (loaded; the 2-core test machine runs a training job at normal priority beside us).
GRACE_S = {"strict": 0.25, "loaded": 1.0}

# class -> (stream it hits, max age that must pass before commands must stop, or None: commands may go on)
FAULTS = {
    "nan_joint": ("joint", 0.0), "inf_joint": ("joint", 0.0), "absurd_joint": ("joint", 0.0),
    "duplicate_joint_names": ("joint", 0.0), "missing_joint": ("joint", 0.0),
    "nan_pose": ("low_dim", 0.0), "absurd_pose": ("low_dim", 0.0),
    "truncated_image": ("front", 0.0), "undecodable_png": ("wrist", 0.0), "png_bomb": ("wrist", 0.0),
    "drop_joint": ("joint", MAX_AGE_S["joint"]), "drop_camera": ("front", MAX_AGE_S["image"]),
    "wrong_type_joint": ("joint", MAX_AGE_S["joint"]),
    "stamp_back_900s": ("joint", 0.0), "stamp_ahead_900s": ("joint", 0.0), "out_of_order": ("front", 0.0),
    "burst": ("joint", None), "resolution_change": ("front", None),
    "enable_toggle": ("operator", None),
}


def build_checkpoint(directory: Path) -> Path:
    spec = {"cameras": {"front": [3, 32, 32], "wrist": [3, 32, 32]}, "joint_names": JOINTS,
            "action_names": JOINTS, "low_dim": {"pose": 3}, "fps": FPS, "n_obs_steps": 3, "chunk_size": 8}
    config = from_dict(VQBeTConfig, {
        "spec": spec, "tokenizer": {"hidden_dim": 32, "latent_dim": 16, "codebook_size": 8},
        "prior": {"n_layer": 2, "n_head": 2, "n_embd": 32, "output_dim": 32, "dropout": 0.0, "block_size": 8},
        "heads": {"hidden_dim": 32}, "vision": {"num_keypoints": 8, "feature_dim": 16}, "state_hidden_dim": 32})
    torch.manual_seed(0)
    policy = VQBeTPolicy(config)
    policy.freeze_tokenizer()
    stats = {constants.ACTION: {"min": -np.ones(2), "max": np.ones(2)},
             constants.STATE: {"min": -np.ones(2), "max": np.ones(2)},
             constants.low_dim_key("pose"): {"min": -np.ones(3), "max": np.ones(3)}}
    return save_checkpoint(directory, config, policy, stats)


def png(pixels: np.ndarray) -> bytes:
    import cv2

    return cv2.imencode(".png", pixels)[1].tobytes()


def png_bomb(width: int, height: int) -> bytes:
    import struct
    import zlib

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    packer = zlib.compressobj(9)
    body = b"".join(packer.compress(bytes(width + 1)) for _ in range(height)) + packer.flush()
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", body) + chunk(b"IEND", b""))


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def to_time(t_s: float):
    return rclpy.time.Time(nanoseconds=int(t_s * 1e9)).to_msg()


def stamp_s(msg) -> float:
    return msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9


class Checker:
    """Records every output of the policy node with its receive time (system clock, the node's clock)."""

    def __init__(self, node):
        self.lock = threading.Lock()
        self.trajectories: list[tuple[float, JointTrajectory]] = []
        self.commands: list[tuple[float, tuple[float, ...]]] = []  # (receive time, values)
        self.diagnostics: list[tuple[float, dict]] = []
        self.clock = node.get_clock()
        node.create_subscription(JointTrajectory, "/policy_node/joint_trajectory", self._on_trajectory, RELIABLE)
        node.create_subscription(Float64MultiArray, "/policy_node/commands", self._on_command, RELIABLE)
        node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, RELIABLE)

    def now_s(self) -> float:
        return self.clock.now().nanoseconds * 1e-9

    def _on_trajectory(self, msg):
        with self.lock:
            self.trajectories.append((self.now_s(), msg))

    def _on_command(self, msg):
        with self.lock:
            self.commands.append((self.now_s(), tuple(msg.data)))

    def _on_diagnostics(self, msg):
        values = {kv.key: kv.value for kv in msg.status[0].values}
        with self.lock:
            self.diagnostics.append((self.now_s(), values))


class Injector:
    def __init__(self, node, rng: random.Random):
        self.node, self.rng = node, rng
        self.front = node.create_publisher(Image, "/front/image_raw", 10)
        self.wrist = node.create_publisher(CompressedImage, "/wrist/image_raw/compressed", 10)
        self.joints = node.create_publisher(JointState, "/joint_states", 10)
        # One DDS participant cannot hold two types on one topic: the wrong type comes from its own context.
        self._wrong_context = rclpy.context.Context()
        rclpy.init(context=self._wrong_context)
        self._wrong_node = rclpy.create_node("fault_soak_wrong_type", context=self._wrong_context)
        self.wrong_joints = self._wrong_node.create_publisher(String, "/joint_states", 10)
        self.pose = node.create_publisher(PoseStamped, "/pose", 10)
        self.enable = node.create_client(SetBool, "/policy_node/enable")
        rgb = np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)
        self.front_small, self.front_big = rgb, np.repeat(np.repeat(rgb, 2, 0), 2, 1)
        self.wrist_png = png(rgb)
        self.bomb = png_bomb(6000, 6000)
        self.back_step = 0

    def close(self) -> None:
        self._wrong_node.destroy_node()
        rclpy.try_shutdown(context=self._wrong_context)

    def publish(self, t_s: float, fault: str | None) -> None:
        stamp = to_time(t_s)
        # front camera
        if fault != "drop_camera":
            pixels = self.front_big if fault == "resolution_change" else self.front_small
            data = pixels.tobytes()
            msg = Image(height=pixels.shape[0], width=pixels.shape[1], encoding="rgb8", step=pixels.shape[1] * 3,
                        data=data[: len(data) // 2] if fault == "truncated_image" else data)
            if fault == "out_of_order":
                self.back_step += 1
                msg.header.stamp = to_time(t_s - 0.5 - 0.01 * self.back_step)  # older than the last good one
            else:
                msg.header.stamp = stamp
            self.front.publish(msg)
        # wrist camera
        data = {"undecodable_png": b"\x89PNG garbage", "png_bomb": self.bomb}.get(fault, self.wrist_png)
        msg = CompressedImage(format="png", data=data)
        msg.header.stamp = stamp
        self.wrist.publish(msg)
        # joints
        positions, names = [0.1, 0.2], list(JOINTS)
        if fault in ("nan_joint", "inf_joint", "absurd_joint"):
            positions[0] = {"nan_joint": float("nan"), "inf_joint": float("inf"), "absurd_joint": 1e30}[fault]
        if fault == "duplicate_joint_names":
            names, positions = ["shoulder", "elbow", "shoulder"], [0.1, 0.2, 0.3]
        if fault == "missing_joint":
            names, positions = ["shoulder"], [0.1]
        joint_stamp = {"stamp_back_900s": t_s - 900.0, "stamp_ahead_900s": t_s + 900.0}.get(fault, t_s)
        if fault == "wrong_type_joint":
            self.wrong_joints.publish(String(data="not a JointState"))
        elif fault != "drop_joint":
            for _ in range(50 if fault == "burst" else 1):
                msg = JointState(name=names, position=positions)
                msg.header.stamp = to_time(joint_stamp)
                self.joints.publish(msg)
        # pose
        pose = PoseStamped()
        pose.header.stamp = stamp
        pose.pose.position.x = {"nan_pose": float("nan"), "absurd_pose": 1e30}.get(fault, 0.1)
        pose.pose.orientation.w = 1.0
        self.pose.publish(pose)


def run(args) -> dict:
    rng = random.Random(args.seed)
    tmp = Path(tempfile.mkdtemp(prefix="fault_soak_"))
    ckpt = build_checkpoint(tmp / "ckpt")
    params = {"checkpoint": str(ckpt), "autostart": True, "device": "cpu", "cpu_threads": 1, "warmup_steps": 1,
              "enable_control": True, "publish_commands": True, "diagnostics_period_s": 1.0,
              "image_max_age_s": MAX_AGE_S["image"], "joint_max_age_s": MAX_AGE_S["joint"],
              "low_dim_max_age_s": MAX_AGE_S["low_dim"], "cameras.wrist.compressed": True,
              "cameras.wrist.topic": "/wrist/image_raw/compressed", "low_dim.pose.type": "pose_stamped",
              "low_dim.pose.topic": "/pose", "low_dim.pose.indices": [0, 1, 6]}
    cli = [sys.executable, "-m", "vqbet_ros.nodes.policy_node", "--ros-args"]
    for k, v in params.items():
        value = str(v).lower() if isinstance(v, bool) else (json.dumps(v) if isinstance(v, list) else v)
        cli += ["-p", f"{k}:={value}"]
    rclpy.init()
    node = rclpy.create_node("fault_soak")
    checker, injector = Checker(node), Injector(node, rng)
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()

    faults: list[dict] = []  # {"class", "start", "end"} on the node's clock
    toggles: list[tuple[float, float]] = []  # (disable sent, enable sent)
    period = 1.0 / FPS
    proc = subprocess.Popen(cli, stdout=subprocess.DEVNULL, stderr=open(tmp / "policy_node.log", "w"))
    try:  # from here on, the policy node process is always stopped (a leftover would answer the next soak)
        # Warm-up: good inputs until chunks flow.
        t0 = time.monotonic()
        k = 0
        while not checker.trajectories:
            if time.monotonic() - t0 > 600:  # torch import + warm-up take minutes on a starved CPU
                raise RuntimeError(f"the policy node sent nothing in 600 s; see {tmp / 'policy_node.log'}")
            injector.publish(checker.now_s(), None)
            k += 1
            time.sleep(max(0.0, t0 + k * period - time.monotonic()))
        warm_end = time.monotonic() + 10.0  # let the process reach its working set before the first RSS
        while time.monotonic() < warm_end:
            injector.publish(checker.now_s(), None)
            time.sleep(period)
        rss_start = rss_mb(proc.pid)
        start_s = checker.now_s()
        wall0 = time.monotonic()
        k = 0
        fault, fault_end, next_fault = None, 0.0, start_s + rng.uniform(2.0, 4.0)
        rss_samples = [rss_start]
        last_rss = time.monotonic()
        while time.monotonic() - wall0 < args.duration_s:
            now = checker.now_s()
            if fault is None and now >= next_fault:
                fault = rng.choice(list(FAULTS))
                fault_end = now + rng.uniform(1.5, 3.0)
                faults.append({"class": fault, "start": now, "end": fault_end})
                injector.back_step = 0
                if fault == "enable_toggle":
                    disable = now
                    injector.enable.call_async(SetBool.Request(data=False))
            elif fault is not None and now >= fault_end:
                if fault == "enable_toggle":
                    toggles.append((disable, now))
                    injector.enable.call_async(SetBool.Request(data=True))
                faults[-1]["end"] = now
                fault, next_fault = None, now + rng.uniform(2.0, 4.0)
            injector.publish(now, None if fault == "enable_toggle" else fault)
            if time.monotonic() - last_rss > 30:
                rss_samples.append(rss_mb(proc.pid))
                last_rss = time.monotonic()
            k += 1
            time.sleep(max(0.0, wall0 + k * period - time.monotonic()))
        if fault == "enable_toggle":
            injector.enable.call_async(SetBool.Request(data=True))
        time.sleep(2.0)
        end_s = checker.now_s()
        rss_end = rss_mb(proc.pid)
        alive = proc.poll() is None
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        executor.shutdown()
        node.destroy_node()
        injector.close()
        rclpy.try_shutdown()
    return summarize(checker, faults, toggles, start_s, end_s, rss_start, rss_end, rss_samples, alive, args)


def date_commands(trajectories, commands) -> tuple[list[tuple[float, float, float]], int]:
    """Each command -> (its receive time, the receive time and the stamp of the chunk that produced it: the one
    whose first point it equals, the nearest in receive time if several do); and how many matched none."""
    by_first_point: dict[tuple, list[tuple[float, float]]] = {}
    for r, m in trajectories:
        if m.points:
            by_first_point.setdefault(tuple(m.points[0].positions), []).append((r, stamp_s(m)))
    dated, unmatched = [], 0
    for r, values in commands:
        candidates = by_first_point.get(values)
        if not candidates:
            unmatched += 1
            continue
        chunk_r, chunk_t = min(candidates, key=lambda c: abs(c[0] - r))
        dated.append((r, chunk_r, chunk_t))
    return dated, unmatched


def summarize(checker, faults, toggles, start_s, end_s, rss_start, rss_end, rss_samples, alive, args) -> dict:
    chunks = [(r, stamp_s(m)) for r, m in checker.trajectories if m.points]
    holds = [r for r, m in checker.trajectories if not m.points]
    commands, unmatched = date_commands(checker.trajectories, checker.commands)
    levels = ("chunks", "commands", "commands_by_arrival")
    violations = {level: {grace: [] for grace in GRACE_S} for level in levels}
    recoveries, never = {}, []
    for f in faults:
        stream, max_age = FAULTS[f["class"]]
        for grace, grace_s in GRACE_S.items():
            if max_age is None:
                continue
            lo, hi = f["start"] + max_age + grace_s, f["end"]
            bad = {"chunks": [t for _, t in chunks if lo <= t <= hi],
                   "commands": [t for _, _, t in commands if lo <= t <= hi],
                   "commands_by_arrival": [r for r, _ in checker.commands if lo <= r <= hi]}
            for level in levels:
                violations[level][grace] += [{"class": f["class"], "offset_s": round(t - f["start"], 3)}
                                             for t in bad[level]]
        after = [t for _, t in chunks if t > f["end"]]
        nxt = next((g["start"] for g in faults if g["start"] > f["end"]), end_s)
        if after and after[0] < nxt:
            recoveries.setdefault(f["class"], []).append(after[0] - f["end"])
        elif f["class"] != "enable_toggle" and nxt - f["end"] > 1.0:
            recoveries.setdefault(f["class"], []).append(float("inf"))
            # the good-input window it had, and the last chunk before it: tells a stuck node from a starved one
            before = [t for _, t in chunks if t <= f["end"]]
            never.append({"class": f["class"], "window_s": round(nxt - f["end"], 3),
                          "last_chunk_before_end_s": round(before[-1] - f["end"], 3) if before else None})
    for disable, enable in toggles:
        hold = next((r for r in holds if r >= disable), None)
        if hold is None:
            for level in levels:
                for grace in GRACE_S:
                    violations[level][grace].append({"class": "enable_toggle", "offset_s": None, "what": "no hold"})
            continue
        # The hold and the chunks share a topic, so their arrival order is their publishing order.
        late = {"chunks": [t for r, t in chunks if r > hold and t < enable - 0.02],
                "commands": [t for _, chunk_r, t in commands if chunk_r > hold and t < enable - 0.02],
                "commands_by_arrival": [r for r, _ in checker.commands if hold + 0.05 < r < enable]}
        for level in levels:
            for grace in GRACE_S:
                violations[level][grace] += [{"class": "enable_toggle", "offset_s": round(t - disable, 3)}
                                             for t in late[level]]
    per_class = {c: sum(f["class"] == c for f in faults) for c in FAULTS}
    all_rec = [x for xs in recoveries.values() for x in xs]
    finite = sorted(x for x in all_rec if x != float("inf"))
    diag = [(t, v) for t, v in checker.diagnostics if start_s <= t <= end_s and "decisions" in v]
    decisions_per_s = None
    if len(diag) >= 2:
        decisions_per_s = (int(diag[-1][1]["decisions"]) - int(diag[0][1]["decisions"])) / (diag[-1][0] - diag[0][0])
    last = diag[-1][1] if diag else {}
    return {
        "duration_s": round(end_s - start_s, 1),
        "node_alive_at_end": alive,
        # judged: chunks and commands (dated by their chunk); commands_by_arrival only for comparison
        "commands_during_fault": {level: {grace: len(v) for grace, v in by_grace.items()}
                                  for level, by_grace in violations.items()},
        "commands_matching_no_chunk": unmatched,
        "commands_received": len(checker.commands),
        "grace_s": GRACE_S,
        "violations": {level: {grace: v[:20] for grace, v in by_grace.items()}
                       for level, by_grace in violations.items()},
        "faults_injected": len(faults),
        "faults_per_class": per_class,
        "recoveries": len(finite),
        "recoveries_never": len(all_rec) - len(finite),
        "recoveries_never_detail": never,
        "recovery_s": {"p50": statistics.median(finite) if finite else None,
                       "p95": finite[int(0.95 * (len(finite) - 1))] if finite else None,
                       "max": finite[-1] if finite else None},
        "recovery_s_per_class": {c: round(statistics.median(v), 3) for c, v in recoveries.items()
                                 if all(x != float("inf") for x in v)},
        "rss_mb": {"start": round(rss_start, 1), "end": round(rss_end, 1),
                   "samples": [round(x, 1) for x in rss_samples]},
        "decisions_per_s": None if decisions_per_s is None else round(decisions_per_s, 2),
        "chunks_received": len(chunks),
        "holds_received": len(holds),
        "node_diagnostics_at_end": {k: last.get(k) for k in ("achieved_rate_hz", "latency_p50_ms", "latency_p99_ms",
                                                               "ticks_missed", "tick_errors", "clock_steps_back")},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration-s", type=float, default=600.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    summary = run(args)
    print(json.dumps(summary, indent=2), flush=True)
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2))
    # os._exit: the executor's daemon thread can keep a plain exit waiting on rclpy shutdown.
    judged = summary["commands_during_fault"]
    ok = (judged["chunks"]["loaded"] == judged["commands"]["loaded"] == summary["commands_matching_no_chunk"] == 0
          and summary["node_alive_at_end"])
    os._exit(0 if ok else 1)


if __name__ == "__main__":
    main()
