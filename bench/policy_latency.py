"""Decision latency of the policy runtime against its floor, per inference path, and control-loop jitter.

    .venv/bin/python bench/policy_latency.py                     # CPU or CUDA (device auto), default sizes
    .venv/bin/python bench/policy_latency.py --device cuda --decisions 200 --json out.json
    .venv/bin/python bench/policy_latency.py --threads 1 --sizes --jitter-rates   # only the paths table

Models, untrained, built in temporary checkpoints:
- paths table: the `model:` sections of `--models` (default the image and state PushT recipes), each run with
  every `--paths` entry (`compile_mode[+bf16]`: eager fp32, inductor freezing, freezing + bf16 autocast),
  reporting each path's latency as a ratio of the eager fp32 floor timed in the same run, and the parity
  gate's verdict (runtime/fast_path.py). Target (issue 13): <= 0.6x the floor for the image config.
- sizes table: the official/LeRobot size (ResNet-18 per camera with spatial softmax, GPT 6 layers x 120,
  heads 2 x 1024, history 5, chunk 5) for `--cameras` x `--sizes`, with `--compile-mode`.

- Decision latency: wall time from the start of a control tick, with the newest frame of every camera already
  in the runtime's cache, to the return of `publish` (the chunk converted to a JointTrajectory and published
  on a real rclpy publisher when rclpy is importable). Converting a frame to the checkpoint's shape happens on
  arrival (subscription callback) and is reported apart ("fit on arrival": 640x480 RGB -> checkpoint size).
- Floor, timed in the same run on the same inputs, eager fp32: one per-camera encoder forward (ResNet +
  pooling + projection) for one frame per camera + the vector MLP + one prior forward (`predict_chunk` on a
  (1, T, Dt) history). Target for eager: latency p50 <= 1.25 x floor p50.
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
from vqbet_ros.config_io import from_dict, load_yaml
from vqbet_ros.model.checkpoint import load_checkpoint, save_checkpoint
from vqbet_ros.model.config import VQBeTConfig
from vqbet_ros.model.policy import VQBeTPolicy
from vqbet_ros.model.scheduler import EXECUTIONS
from vqbet_ros.runtime.clock import MonotonicClock
from vqbet_ros.runtime.config import RuntimeConfig
from vqbet_ros.runtime.engine import PolicyRuntime, resolve_device
from vqbet_ros.runtime.images import fit_image
from vqbet_ros.runtime.worker import PolicyWorker
from vqbet_ros.training.config import TrainConfig

ROOT = Path(__file__).resolve().parents[1]
JOINTS = [f"joint_{i}" for i in range(6)]


def save_untrained(directory: Path, config: VQBeTConfig) -> Path:
    """An untrained policy of `config`, with [-1, 1] stats for every vector, as a checkpoint."""
    torch.manual_seed(0)
    policy = VQBeTPolicy(config, load_pretrained=False)
    policy.freeze_tokenizer()
    spec = config.spec
    ones = lambda n: {"min": -np.ones(n), "max": np.ones(n)}  # noqa: E731
    stats = {constants.ACTION: ones(spec.action_dim)}
    if spec.joint_names:
        stats[constants.STATE] = ones(spec.state_dim)
    stats.update({constants.low_dim_key(n): ones(size) for n, size in spec.low_dim.items()})
    return save_checkpoint(directory, config, policy, stats)


def build_checkpoint(directory: Path, n_cameras: int, size: int, fps: float) -> Path:
    spec = {"cameras": {f"cam{i}": [3, size, size] for i in range(n_cameras)}, "joint_names": JOINTS,
            "action_names": JOINTS, "fps": fps, "n_obs_steps": 5, "chunk_size": 5}
    return save_untrained(directory, from_dict(VQBeTConfig, {"spec": spec}))


def parse_path(path: str) -> tuple[str, str]:
    """`freeze+bf16` -> (compile_mode, autocast); `bf16` alone = eager under bf16 autocast."""
    words = path.split("+")
    modes = [w for w in words if w != "bf16"]
    return (modes[0] if modes else "none"), ("bf16" if "bf16" in words else "none")


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


def bench_latency(ckpt: Path, args, publish, compile_mode: str = "none", autocast: str = "none") -> dict:
    config = RuntimeConfig(device=args.device, compile_mode=compile_mode, autocast=autocast,
                           cpu_threads=args.threads)
    runtime = PolicyRuntime(load_checkpoint(ckpt, device=resolve_device(args.device)), config)
    t_warm = time.perf_counter()
    runtime.warmup()
    warmup_s = time.perf_counter() - t_warm
    policy, device, spec = runtime.policy, runtime.device, runtime.spec
    enc = policy.obs_encoder
    cams = list(spec.cameras)
    forwards = {"n": 0}
    # backbone runs, counted on the eager path only (a hook added after torch.compile would retrace the graph)
    hooks = [cam.backbone.register_forward_hook(lambda *a: forwards.__setitem__("n", forwards["n"] + 1))
             for cam in enc.cameras] if compile_mode == "none" else []
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (480, 640, 3), dtype=np.uint8) for _ in range(8)]  # VGA camera frames
    fitted = {c: [torch.from_numpy(fit_image(f, spec.cameras[c]))[None] for f in frames] for c in cams}
    latency, floor, fit, per_decision = [], [], [], []
    tokens = torch.zeros(1, spec.n_obs_steps, enc.token_dim, device=device)
    image_dev = [torch.zeros(1, *spec.cameras[c], dtype=torch.uint8, device=device) for c in cams]
    vector_dev = torch.zeros(1, enc.vector_dim, device=device)
    with torch.inference_mode():
        for k in range(args.warmup + args.decisions):
            t = k * runtime.dt_s
            for i, cam in enumerate(cams):
                t_fit = time.perf_counter()
                runtime.put_image(cam, frames[(k + i) % len(frames)], t)
                fit.append(time.perf_counter() - t_fit)
            if spec.joint_names:
                runtime.put_joint_state(rng.uniform(-1, 1, len(runtime.joint_input_names)), t)
            for name, size in spec.low_dim.items():
                runtime.put_low_dim(name, rng.uniform(-1, 1, size), t)
            before = forwards["n"]
            t0 = time.perf_counter()
            result = runtime.step(t + 0.001, tick=k)
            publish(result)
            sync(device)
            elapsed = time.perf_counter() - t0
            encoded = forwards["n"] - before
            assert result.decided, result.problems
            # floor: eager fp32, one encoder forward per camera for one frame + vector MLP + one prior forward
            for i, cam in enumerate(cams):
                image_dev[i].copy_(fitted[cam][(k + i) % len(frames)])
            vector_dev.uniform_(-1, 1)
            tokens.copy_(runtime.history.tokens)
            sync(device)
            f0 = time.perf_counter()
            for i in range(len(cams)):
                enc.encode_camera(i, image_dev[i])
            if enc.vector_dim:
                enc.encode_vector(vector_dev)
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
    gate = runtime.inference
    return {
        "cameras": len(cams), "size": spec.cameras[cams[0]][1] if cams else 0, "device": str(device),
        "decisions": len(latency), "path": gate.description, "gate": gate.state, "gate_reason": gate.reason,
        "gate_max_difference": gate.max_difference, "warmup_s": warmup_s,
        "latency_p50_ms": lat_p50 * 1e3, "latency_p99_ms": float(np.percentile(latency, 99)) * 1e3,
        "floor_p50_ms": floor_p50 * 1e3, "ratio_p50": lat_p50 / floor_p50,
        "fit_on_arrival_p50_ms": statistics.median(fit) * 1e3 if fit else 0.0,
        "frames_encoded_per_decision": sorted(set(per_decision)),
    }


def bench_paths(root: Path, args, publish) -> list[dict]:
    """Every `--paths` entry on every `--models` config, in one run so the ratios compare."""
    results = []
    for model in args.models:
        config = load_yaml(TrainConfig, model).model
        ckpt = save_untrained(root / Path(model).stem, config)
        for path in args.paths:
            mode, cast = parse_path(path)
            r = bench_latency(ckpt, args, publish, mode, cast)
            results.append({"model": Path(model).stem, "requested": path, **r})
            print(f"  {Path(model).stem} {path}: {r['latency_p50_ms']:.2f} ms, {r['ratio_p50']:.3f}x floor, "
                  f"gate {r['gate']}", flush=True)
    return results


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
    parser.add_argument("--compile-mode", default="none",
                        help="sizes table: none | freeze | default | reduce-overhead | max-autotune")
    parser.add_argument("--models", nargs="*", default=[str(ROOT / "config" / "train_pusht_image.yaml"),
                                                         str(ROOT / "config" / "train_pusht_state.yaml")],
                        help="paths table: training configs whose `model:` is benchmarked (none = skip the table)")
    parser.add_argument("--paths", nargs="*", default=["none", "freeze", "freeze+bf16"],
                        help="paths table: compile_mode[+bf16] or bf16 per run (none = eager fp32)")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch default)")
    parser.add_argument("--decisions", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--sizes", type=int, nargs="*", default=[96, 224])
    parser.add_argument("--cameras", type=int, nargs="*", default=[1, 2])
    parser.add_argument("--jitter-rates", type=float, nargs="*", default=[10.0, 30.0])
    parser.add_argument("--jitter-seconds", type=float, default=5.0)
    parser.add_argument("--execution", default="ensemble", choices=EXECUTIONS,
                        help="execution mode of the jitter runs (the latency runs decide every tick)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    publish, close, publish_note = make_publish()
    results = {"paths": [], "latency": [], "jitter": [], "publish": publish_note, "torch": torch.__version__,
               "threads": torch.get_num_threads() if args.threads == 0 else args.threads}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        results["paths"] = bench_paths(root, args, publish)
        for size in args.sizes:
            for n in args.cameras:
                ckpt = build_checkpoint(root / f"c{n}_{size}", n, size, fps=10.0)
                results["latency"].append(bench_latency(ckpt, args, publish, args.compile_mode))
        for fps in args.jitter_rates:
            results["jitter"].append(bench_jitter(root, fps, args))
    close()
    print(f"decision latency (tick start -> {publish_note} returned) vs the eager fp32 floor; "
          f"torch {torch.__version__}, {results['threads']} CPU threads, {args.decisions} decisions per row")
    if results["paths"]:
        print("| model | path | gate (max diff, normalized) | latency p50 ms | latency p99 ms | floor p50 ms "
              "| latency / floor | warm-up s |")
        print("|---|---|---|---|---|---|---|---|")
        for r in results["paths"]:
            diff = "" if r["gate_max_difference"] is None else f" ({r['gate_max_difference']:.2g})"
            print(f"| {r['model']} | {r['path']} | {r['gate']}{diff} | {r['latency_p50_ms']:.2f} | "
                  f"{r['latency_p99_ms']:.2f} | {r['floor_p50_ms']:.2f} | {r['ratio_p50']:.3f} | "
                  f"{r['warmup_s']:.1f} |")
        for r in results["paths"]:
            if r["gate_reason"] and r["gate"] != "accepted":
                print(f"  {r['model']} {r['requested']}: {r['gate_reason']}")
        print()
    if results["latency"]:
        print(f"official size, compile_mode {args.compile_mode}")
        print("| cameras | size | device | latency p50 ms | latency p99 ms | floor p50 ms | ratio "
              "| fit on arrival ms | backbone forwards per decision |")
        print("|---|---|---|---|---|---|---|---|---|")
        for r in results["latency"]:
            print(f"| {r['cameras']} | {r['size']}x{r['size']} | {r['device']} | {r['latency_p50_ms']:.2f} | "
                  f"{r['latency_p99_ms']:.2f} | {r['floor_p50_ms']:.2f} | {r['ratio_p50']:.3f} | "
                  f"{r['fit_on_arrival_p50_ms']:.3f} | {r['frames_encoded_per_decision']} |")
    if results["jitter"]:
        print(f"\ncontrol loop (PolicyWorker, monotonic clock, 1 camera 96x96, execution {args.execution})")
        print("| rate Hz | ticks | achieved Hz | missed | jitter p50 ms | jitter p99 ms | jitter max ms "
              "| decision p50 ms |")
        print("|---|---|---|---|---|---|---|---|")
        for r in results["jitter"]:
            print(f"| {r['fps']:g} | {r['ticks']} | {r['achieved_rate_hz']:.2f} | {r['ticks_missed']} | "
                  f"{r['jitter_p50_ms']:.3f} | {r['jitter_p99_ms']:.3f} | {r['jitter_max_ms']:.3f} | "
                  f"{r['decision_p50_ms']:.2f} |")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    eager = [r for r in results["latency"] + results["paths"] if r["path"] == "eager fp32"]
    ok = all(r["frames_encoded_per_decision"] == [r["cameras"]] for r in eager)
    ok = ok and all(r["gate"] != "rejected" for r in results["paths"])
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
