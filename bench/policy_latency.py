"""Decision latency of the policy runtime against its floor, and control-loop jitter.

    .venv/bin/python bench/policy_latency.py                     # CPU or CUDA (device auto), default sizes
    .venv/bin/python bench/policy_latency.py --device cuda --decisions 200 --json out.json

Model: an untrained policy of the official/LeRobot size (ResNet-18 per camera with spatial softmax, GPT
6 layers x 120, heads 2 x 1024, history 5, chunk 5), built in a temporary checkpoint.

- Decision latency: wall time from the start of a control tick, with the newest frame of every camera already
  in the runtime's cache, to the return of `publish` (the chunk converted to a JointTrajectory and published
  on a real rclpy publisher when rclpy is importable). Converting a frame to the checkpoint's shape happens on
  arrival (subscription callback) and is reported apart ("fit on arrival": 640x480 RGB -> checkpoint size).
- Floor, timed in the same run on the same inputs: one per-camera encoder forward (ResNet + pooling +
  projection) for one frame per camera + one prior forward (`predict_chunk` on a (1, T, Dt) history).
  Target: latency p50 <= 1.25 x floor p50.
- Frames encoded per decision: backbone forwards counted with forward hooks; must be exactly 1 per camera.
- Jitter: `PolicyWorker` on the monotonic clock at 10 and 30 Hz (1 camera 96x96, new frames every tick):
  tick start minus its deadline, achieved rate, ticks missed.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import torch

from vqbet_ros import constants
from vqbet_ros.config_io import from_dict
from vqbet_ros.model.checkpoint import load_checkpoint, save_checkpoint
from vqbet_ros.model.config import VQBeTConfig
from vqbet_ros.model.policy import VQBeTPolicy
from vqbet_ros.runtime.clock import MonotonicClock
from vqbet_ros.runtime.config import RuntimeConfig
from vqbet_ros.runtime.engine import PolicyRuntime, resolve_device
from vqbet_ros.runtime.images import fit_image
from vqbet_ros.runtime.worker import PolicyWorker

JOINTS = [f"joint_{i}" for i in range(6)]


def build_checkpoint(directory: Path, n_cameras: int, size: int, fps: float) -> Path:
    spec = {"cameras": {f"cam{i}": [3, size, size] for i in range(n_cameras)}, "joint_names": JOINTS,
            "action_names": JOINTS, "fps": fps, "n_obs_steps": 5, "chunk_size": 5}
    config = from_dict(VQBeTConfig, {"spec": spec})
    policy = VQBeTPolicy(config)
    policy.freeze_tokenizer()
    a = len(JOINTS)
    stats = {constants.ACTION: {"min": -np.ones(a), "max": np.ones(a)},
             constants.STATE: {"min": -np.ones(a), "max": np.ones(a)}}
    return save_checkpoint(directory, config, policy, stats)


def make_publish():
    """A real rclpy publish of the chunk when rclpy is importable, else only the message conversion."""
    try:
        import rclpy
        from trajectory_msgs.msg import JointTrajectory

        from vqbet_ros.nodes.trajectory import chunk_to_joint_trajectory
    except ImportError:
        return (lambda result: None), (lambda: None), "no rclpy: chunk not published"
    context = rclpy.context.Context()
    rclpy.init(context=context)
    node = rclpy.create_node("policy_latency_bench", context=context)
    pub = node.create_publisher(JointTrajectory, "~/joint_trajectory", 10)

    def publish(result):
        if result.chunk is not None:
            pub.publish(chunk_to_joint_trajectory(result.chunk))

    def close():
        node.destroy_node()
        rclpy.shutdown(context=context)

    return publish, close, "rclpy JointTrajectory publish"


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bench_latency(root: Path, n_cameras: int, size: int, args, publish) -> dict:
    ckpt = build_checkpoint(root / f"c{n_cameras}_{size}", n_cameras, size, fps=10.0)
    config = RuntimeConfig(device=args.device, compile_mode=args.compile_mode, cpu_threads=args.threads)
    runtime = PolicyRuntime(load_checkpoint(ckpt, device=resolve_device(args.device)), config)
    runtime.warmup()
    policy, device = runtime.policy, runtime.device
    cams = list(runtime.spec.cameras)
    forwards = {"n": 0}
    hooks = [enc.backbone.register_forward_hook(lambda *a: forwards.__setitem__("n", forwards["n"] + 1))
             for enc in policy.obs_encoder.cameras]
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (480, 640, 3), dtype=np.uint8) for _ in range(8)]  # VGA camera frames
    fitted = [torch.from_numpy(fit_image(f, [3, size, size]))[None] for f in frames]  # what the encoder sees
    latency, floor, fit, per_decision = [], [], [], []
    tokens = torch.zeros(1, runtime.spec.n_obs_steps, policy.obs_encoder.token_dim, device=device)
    image_dev = [torch.zeros(1, 3, size, size, dtype=torch.uint8, device=device) for _ in cams]
    with torch.inference_mode():
        for k in range(args.warmup + args.decisions):
            t = k * runtime.dt_s
            for i, cam in enumerate(cams):
                t_fit = time.perf_counter()
                runtime.put_image(cam, frames[(k + i) % len(frames)], t)
                fit.append(time.perf_counter() - t_fit)
            runtime.put_joint_state(rng.uniform(-1, 1, len(JOINTS)), t)
            before = forwards["n"]
            t0 = time.perf_counter()
            result = runtime.step(t + 0.001, tick=k)
            publish(result)
            sync(device)
            elapsed = time.perf_counter() - t0
            encoded = forwards["n"] - before
            assert result.decided, result.problems
            # floor: one encoder forward per camera for one frame + one prior forward, same inputs
            for i, cam in enumerate(cams):
                image_dev[i].copy_(fitted[(k + i) % len(frames)])
            tokens.copy_(runtime.history.tokens)
            sync(device)
            f0 = time.perf_counter()
            for i, enc in enumerate(policy.obs_encoder.cameras):
                enc(image_dev[i])
            policy.predict_chunk(tokens).cpu()
            sync(device)
            floor_s = time.perf_counter() - f0
            if k >= args.warmup:
                latency.append(elapsed)
                floor.append(floor_s)
                per_decision.append(encoded)
    for h in hooks:
        h.remove()
    lat_p50, floor_p50 = statistics.median(latency), statistics.median(floor)
    return {
        "cameras": n_cameras, "size": size, "device": str(device), "decisions": len(latency),
        "latency_p50_ms": lat_p50 * 1e3, "latency_p99_ms": float(np.percentile(latency, 99)) * 1e3,
        "floor_p50_ms": floor_p50 * 1e3, "ratio_p50": lat_p50 / floor_p50,
        "fit_on_arrival_p50_ms": statistics.median(fit) * 1e3,
        "frames_encoded_per_decision": sorted(set(per_decision)),
    }


def bench_jitter(root: Path, fps: float, args) -> dict:
    ckpt = build_checkpoint(root / f"jitter_{fps:g}", 1, 96, fps=fps)
    runtime = PolicyRuntime.from_checkpoint(ckpt, RuntimeConfig(device=args.device, cpu_threads=args.threads,
                                                                execution=args.execution))
    runtime.warmup()
    clock = MonotonicClock()
    rng = np.random.default_rng(0)
    stop = threading.Event()

    def camera():  # a camera + joint publisher at 3x the control rate, stamped on the same clock
        while not stop.wait(1 / (3 * fps)):
            now = clock.now_s()
            runtime.put_image("cam0", rng.integers(0, 256, (96, 96, 3), dtype=np.uint8), now)
            runtime.put_joint_state(rng.uniform(-1, 1, len(JOINTS)), now)

    feeder = threading.Thread(target=camera, daemon=True)
    feeder.start()
    statuses = []
    worker = PolicyWorker(runtime, clock, lambda r: statuses.append(r.status))
    worker.start()
    time.sleep(args.jitter_seconds)
    worker.stop()
    stop.set()
    jitter = np.array(list(worker.jitter_s.values)[5:])  # first ticks wait for the first frames
    return {
        "fps": fps, "ticks": worker.ticks, "running_ticks": statuses.count("running"),
        "achieved_rate_hz": worker.achieved_rate_hz(), "ticks_missed": worker.ticks_missed,
        "jitter_p50_ms": float(np.percentile(jitter, 50)) * 1e3, "jitter_p99_ms": float(np.percentile(jitter, 99)) * 1e3,
        "jitter_max_ms": float(jitter.max()) * 1e3,
        "decision_p50_ms": (worker.latency_s.percentile(50) or 0) * 1e3,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="auto", choices=["auto", "cuda", "cpu"])
    parser.add_argument("--compile-mode", default="none", help="none | default | reduce-overhead | max-autotune")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch default)")
    parser.add_argument("--decisions", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--sizes", type=int, nargs="*", default=[96, 224])
    parser.add_argument("--cameras", type=int, nargs="*", default=[1, 2])
    parser.add_argument("--jitter-rates", type=float, nargs="*", default=[10.0, 30.0])
    parser.add_argument("--jitter-seconds", type=float, default=5.0)
    parser.add_argument("--execution", default="ensemble", choices=["ensemble", "open_loop"],
                        help="execution mode of the jitter runs (the latency runs decide every tick)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    publish, close, publish_note = make_publish()
    results = {"latency": [], "jitter": [], "publish": publish_note, "torch": torch.__version__,
               "threads": torch.get_num_threads() if args.threads == 0 else args.threads}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for size in args.sizes:
            for n in args.cameras:
                results["latency"].append(bench_latency(root, n, size, args, publish))
        for fps in args.jitter_rates:
            results["jitter"].append(bench_jitter(root, fps, args))
    close()
    print(f"decision latency (tick start -> {publish_note} returned) vs floor; torch {torch.__version__}, "
          f"{results['threads']} CPU threads")
    print("| cameras | size | device | latency p50 ms | latency p99 ms | floor p50 ms | ratio | fit on arrival ms "
          "| backbone forwards per decision |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in results["latency"]:
        print(f"| {r['cameras']} | {r['size']}x{r['size']} | {r['device']} | {r['latency_p50_ms']:.2f} | "
              f"{r['latency_p99_ms']:.2f} | {r['floor_p50_ms']:.2f} | {r['ratio_p50']:.3f} | "
              f"{r['fit_on_arrival_p50_ms']:.3f} | {r['frames_encoded_per_decision']} |")
    print(f"\ncontrol loop (PolicyWorker, monotonic clock, 1 camera 96x96, execution {args.execution})")
    print("| rate Hz | ticks | achieved Hz | missed | jitter p50 ms | jitter p99 ms | jitter max ms | decision p50 ms |")
    print("|---|---|---|---|---|---|---|---|")
    for r in results["jitter"]:
        print(f"| {r['fps']:g} | {r['ticks']} | {r['achieved_rate_hz']:.2f} | {r['ticks_missed']} | "
              f"{r['jitter_p50_ms']:.3f} | {r['jitter_p99_ms']:.3f} | {r['jitter_max_ms']:.3f} | "
              f"{r['decision_p50_ms']:.2f} |")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    ok = all(r["frames_encoded_per_decision"] == [r["cameras"]] for r in results["latency"])
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
