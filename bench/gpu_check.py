"""One GPU check, under 10 minutes on one GPU, one table (run it through bench/gpu_check.sh).

    bench/gpu_check.sh                         # on a CUDA machine: every part, figures for the model card
    bench/gpu_check.sh --cpu-dry-run           # a few steps of each part on the CPU (CI: test_bench_gpu_check.py)

Parts, in order (a part that fails is reported in the table and makes the exit code 1; the others still run):
1. parity: the runtime on CUDA and on the CPU, same untrained image-recipe model (argmax codes), same 5
   observations: largest chunk difference (normalized action units) <= `PARITY_TOLERANCE`.
2. latency: decision latency (bench/policy_latency.py) on CUDA, eager / torch.compile / CUDA graphs
   (`reduce-overhead`), 1 and 2 cameras at 96x96 and 224x224, with the parity gate's verdict.
3. throughput: stage-2 training windows/s of the image recipe (config/train_pusht_image.yaml model, its
   batch, h-windows, all positions; bench/train_throughput.py), fp32 and bf16 AMP.
4. training: `vqbet-train` on the image recipe for `--train-minutes` (40% encoder pretraining, 60% stage 2;
   stage 1 at its steps), then `vqbet-eval` of its final checkpoint, `--eval-episodes` on the official protocol.
   The training gets less than `--train-minutes` when the time left before the 10-minute stop
   (`GPU_CHECK_TIMEOUT_S`) would not cover it, its start-up and the evaluation, so the table always prints.
The table ends with each part's wall clock and CPU time. Expected on one GPU (not measured yet: no GPU was
lent): start-up ~0.3 min, parity < 0.2, latency ~4-5 (no compiled row starts after `--latency-budget-s` 210 s;
each compiles for ~1 min), throughput ~0.3, training the rest, ~4 (up to 2 min of training; ~1.3 min start-up,
stage 1 and feature cache; ~2 min for 50 episodes): 10 minutes at most by construction. Issue 13 asked for 8;
the compiled latency rows and 2 minutes of training do not fit in 8, and a shorter stop would only shorten
the training.

The dry run runs every row of the table on the CPU, one thread, in about 30 s (a test of the default suite): tiny
sizes (32x32 cameras, 2 observations, 2 decisions, 1 training step per variant, 2 steps per training stage on
a synthetic 4-episode PushT replay with images, 2 episodes of 3 steps), parity of the CPU against itself, and
the compiled rows with `torch.compile` disabled, so they run through the runtime's optimized path and its
parity gate but not through inductor (a cold inductor compile takes minutes on a CPU); `--dry-run-compile`
compiles for real (a slow test).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from argparse import Namespace
from pathlib import Path

t_import = time.perf_counter()  # before torch: start-up counts towards the time limit

import numpy as np  # noqa: E402
import torch  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

import policy_latency  # noqa: E402
import train_throughput  # noqa: E402

from vqbet_ros.config_io import load_yaml  # noqa: E402
from vqbet_ros.model.checkpoint import load_checkpoint  # noqa: E402
from vqbet_ros.model.policy import VQBeTPolicy  # noqa: E402
from vqbet_ros.runtime.config import RuntimeConfig  # noqa: E402
from vqbet_ros.runtime.engine import PolicyRuntime  # noqa: E402
from vqbet_ros.training.config import TrainConfig  # noqa: E402

IMAGE_RECIPE = ROOT / "config" / "train_pusht_image.yaml"
PARITY_TOLERANCE = 0.02  # normalized action units, as RuntimeConfig.parity_tolerance: TF32 convolutions differ ~1e-3
DRY_SIZE = 32  # camera size of the dry run: a few seconds of CPU per part instead of minutes
# Part 4 on a GPU, estimated (see the docstring): what the training needs besides its minutes (process start,
# data, stage 1, feature cache), and the evaluation of `--eval-episodes`.
TRAIN_OVERHEAD_S, EVAL_RESERVE_S = 75.0, 120.0


def image_recipe(args) -> TrainConfig:
    """config/train_pusht_image.yaml; its camera shrunk to `DRY_SIZE` in the dry run."""
    cfg = load_yaml(TrainConfig, IMAGE_RECIPE)
    if args.cpu_dry_run:
        cfg.model.spec.cameras = {name: [3, DRY_SIZE, DRY_SIZE] for name in cfg.model.spec.cameras}
    return cfg


def part_parity(args, root: Path) -> list[tuple]:
    model = image_recipe(args).model
    model.heads.argmax = True  # deterministic codes on both devices
    ckpt = policy_latency.save_untrained(root / "parity", model)
    runtimes = [PolicyRuntime(load_checkpoint(ckpt, device=d), RuntimeConfig(device=d, warmup_steps=1))
                for d in ("cpu", args.device)]
    spec = runtimes[0].spec
    rng = np.random.default_rng(0)
    worst = 0.0
    for k in range(2 if args.cpu_dry_run else 5):
        image = rng.integers(0, 256, (96, 96, 3), dtype=np.uint8)
        q = rng.uniform(-1, 1, len(spec.joint_names))
        chunks = []
        for runtime in runtimes:
            runtime.put_image("image", image, k * spec.dt)
            runtime.put_joint_state(q, k * spec.dt)
            with torch.inference_mode():
                result = runtime.step(k * spec.dt + 0.001, tick=k)
            assert result.status == "running", result.problems
            chunks.append(result.chunk.positions)  # stats [-1, 1]: action units = normalized units
        worst = max(worst, float(np.abs(chunks[0] - chunks[1]).max()))
    if worst > PARITY_TOLERANCE:
        raise AssertionError(f"{args.device} chunk differs from the CPU chunk by {worst:.4g} > {PARITY_TOLERANCE}")
    note = "dry run: CPU against itself" if args.cpu_dry_run else f"tolerance {PARITY_TOLERANCE}"
    return [("parity", f"largest chunk difference {args.device} vs cpu, image recipe model", f"{worst:.2e}", note)]


def part_latency(args, root: Path) -> list[tuple]:
    modes = ["none", "default", "reduce-overhead"]
    sizes, decisions = ([DRY_SIZE], 2) if args.cpu_dry_run else ([96, 224], 30)
    bench_args = Namespace(device=args.device, threads=1 if args.cpu_dry_run else 0,
                           warmup=1 if args.cpu_dry_run else 5, decisions=decisions)
    publish, close, _ = policy_latency.make_publish()
    rows = []
    t0 = time.perf_counter()
    try:
        for size in sizes:
            for n in (1, 2):
                ckpt = policy_latency.build_checkpoint(root / f"latency_{n}_{size}", n, size, fps=10.0)
                for mode in modes:
                    # dry run: the optimized path and its gate without inductor (torch.compile returns the
                    # function itself), unless --dry-run-compile
                    no_compile = args.cpu_dry_run and not args.dry_run_compile and mode != "none"
                    compiling = mode != "none" and not no_compile
                    if compiling and time.perf_counter() - t0 > args.latency_budget_s:
                        rows.append(("latency", f"{n} cam {size}x{size}, compile {mode}", "skipped",
                                     f"over --latency-budget-s {args.latency_budget_s:g} (compiling)"))
                        continue
                    with torch._dynamo.config.patch(disable=no_compile):
                        r = policy_latency.bench_latency(ckpt, bench_args, publish, mode)
                    rows.append(("latency", f"{n} cam {size}x{size}, {r['path']}",
                                 f"{r['latency_p50_ms']:.2f} ms",
                                 f"p99 {r['latency_p99_ms']:.2f} ms, {r['ratio_p50']:.2f}x eager floor, "
                                 f"gate {r['gate']}, warm-up {r['warmup_s']:.0f} s"
                                 + (", dry run: torch.compile disabled" if no_compile else "")))
                    if r["gate"] == "rejected":
                        raise AssertionError(f"{mode}: {r['gate_reason']}")
    finally:
        close()
    return rows


def part_throughput(args, root: Path) -> list[tuple]:
    cfg = image_recipe(args)
    spec = cfg.model.spec
    policy = VQBeTPolicy(cfg.model, load_pretrained=False).to(args.device)
    policy.freeze_tokenizer()
    policy.train()
    batch, steps = (4, 1) if args.cpu_dry_run else (cfg.stage2.batch_size, 10)
    rows = []
    for amp in (False, True):
        rate = train_throughput.time_variant(policy, spec, cfg.stage2.loss_positions, batch, spec.n_obs_steps,
                                             steps, amp)
        rows.append(("throughput", f"stage 2, image recipe, {'bf16 AMP' if amp else 'fp32'}",
                     f"{rate:.1f} windows/s", f"batch {batch}, {spec.n_obs_steps}-windows, synthetic"))
    return rows


def write_tiny_image_replay(path: Path, episodes: int = 4, length: int = 12) -> Path:
    """A PushT-shaped Diffusion-Policy replay (random walks, noise images) for the dry run's training."""
    import zarr

    rng = np.random.default_rng(0)
    n = episodes * length
    agent = 256 + np.cumsum(rng.normal(0, 5, (n, 2)), axis=0)
    block = np.concatenate([256 + rng.normal(0, 20, (n, 2)), rng.uniform(0, 6.28, (n, 1))], axis=1)
    group = zarr.open_group(str(path), mode="w", zarr_format=2)
    group.create_array("data/state", data=np.concatenate([agent, block], 1).astype(np.float32))
    group.create_array("data/keypoint", data=(block[:, None, :2] + rng.normal(0, 30, (n, 9, 2))).astype(np.float32))
    group.create_array("data/action", data=(agent + rng.normal(0, 3, (n, 2))).astype(np.float32))
    group.create_array("data/img", data=rng.uniform(0, 255, (n, DRY_SIZE, DRY_SIZE, 3)).astype(np.float32))
    group.create_array("meta/episode_ends", data=np.arange(1, episodes + 1, dtype=np.int64) * length)
    return path


def run_command(cmd: list[str], timeout_s: float, log: Path) -> None:
    """Run a console command of this repository; its output goes to `log`, whose tail is raised on failure."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    with open(log, "w") as out:
        code = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT,
                              timeout=timeout_s).returncode
    if code != 0:
        tail = "\n".join(log.read_text().splitlines()[-15:])
        raise RuntimeError(f"{' '.join(cmd[:3])} ... exited {code}:\n{tail}")


def part_training(args, root: Path) -> list[tuple]:
    run_dir = args.out / "train"
    shutil.rmtree(run_dir, ignore_errors=True)
    left_s = args.deadline - time.perf_counter() - TRAIN_OVERHEAD_S - EVAL_RESERVE_S
    minutes = min(args.train_minutes, left_s / 60)
    if minutes < 0.5:
        if not args.cpu_dry_run:  # the dry run's steps end its stages, not their time limits
            raise RuntimeError(f"{minutes * 60:.0f} s of training left before the {args.time_limit_s:g} s stop "
                               "(GPU_CHECK_TIMEOUT_S); lower --latency-budget-s or raise the limit")
        minutes = 0.5
    overrides = [f"encoder_pretrain.time_limit_min={0.4 * minutes:.3f}", f"stage2.time_limit_min={0.6 * minutes:.3f}"]
    if args.cpu_dry_run:  # steps end each stage long before its time limit
        data = write_tiny_image_replay(root / "tiny_image_pusht.zarr")
        overrides += [f"model.spec.cameras.image=[3,{DRY_SIZE},{DRY_SIZE}]", "encoder_pretrain.steps=2",
                      "encoder_pretrain.batch_size=8", "stage1.steps=2", "stage1.batch_size=16", "stage2.steps=2",
                      "stage2.batch_size=8", "stage2.warmup_steps=1", "num_threads=1", "log_every=1",
                      "val_every=1000", "checkpoint_every=1000", "data.val_fraction=0.25"]
    else:
        data = args.data or load_yaml(TrainConfig, IMAGE_RECIPE).data.path
        overrides.append("num_threads=8")
    overrides += [f"data.path={data}", f"output_dir={run_dir}", f"device={args.device}", "rollout.every_min=0",
                  f"stage2.feature_cache_dir={args.out / 'feature_cache'}"]
    python = sys.executable
    t0 = time.perf_counter()
    run_command([python, "-m", "vqbet_ros.training.train", "--config", str(IMAGE_RECIPE), "--no-progress",
                 *overrides], timeout_s=60 * (args.train_minutes + 3), log=args.out / "train.log")
    train_s = time.perf_counter() - t0
    episodes = 2 if args.cpu_dry_run else args.eval_episodes
    eval_json = args.out / "eval.json"
    steps = ["--max-steps", "3"] if args.cpu_dry_run else []
    t0 = time.perf_counter()
    run_command([python, "-m", "vqbet_ros.training.evaluate", "--checkpoint", str(run_dir / "final"),
                 "--episodes", str(episodes), "--batch", str(episodes), "--protocol", "official",
                 "--device", args.device, "--threads", "1" if args.cpu_dry_run else "8", "--output", str(eval_json),
                 *steps], timeout_s=300, log=args.out / "eval.log")
    eval_s = time.perf_counter() - t0
    summary = json.loads(eval_json.read_text())["summary"]
    return [("training", "vqbet-train, image recipe", f"{train_s / 60:.1f} min",
             "dry run: 2 steps per stage, synthetic data" if args.cpu_dry_run
             else f"limit {minutes:.2f} min of training, data {data}"),
            ("training", f"final coverage, {episodes} episodes official",
             f"{summary['final_coverage_mean']:.3f} ± {summary['final_coverage_se']:.3f}",
             f"success {summary['success_end_mean']:.2f}; eval {eval_s:.0f} s")]


def cpu_s() -> float:
    """CPU seconds used so far by this process and its finished subprocesses: beside the wall clock, it shows
    how much of a part's time was spent waiting for a loaded CPU."""
    return sum(r.ru_utime + r.ru_stime for r in map(resource.getrusage,
                                                    (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)))


PARTS = [("parity", part_parity), ("latency", part_latency), ("throughput", part_throughput),
         ("training", part_training)]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cpu-dry-run", action="store_true", help="a few steps of each part on the CPU")
    parser.add_argument("--dry-run-compile", action="store_true",
                        help="dry run: compile the compiled rows with inductor (minutes on a CPU)")
    parser.add_argument("--data", help="PushT replay with images (default: the recipe's data.path)")
    parser.add_argument("--latency-budget-s", type=float, default=210,
                        help="part 2: no new compiled row after this many seconds (each compiles for ~1 min)")
    parser.add_argument("--train-minutes", type=float, default=2.0, help="wall clock of vqbet-train (part 4)")
    parser.add_argument("--eval-episodes", type=int, default=50)
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "gpu_check", help="logs and the trained run")
    parser.add_argument("--parts", nargs="*", default=[name for name, _ in PARTS], help="run only these parts")
    args = parser.parse_args(argv)
    args.device = "cpu" if args.cpu_dry_run else "cuda"
    if not args.cpu_dry_run and not torch.cuda.is_available():
        print("gpu_check: error: torch sees no CUDA device; use --cpu-dry-run to check the script on a CPU",
              file=sys.stderr)
        return 2
    if args.cpu_dry_run:  # tiny sizes: a second thread only spins, and on a loaded CI machine it costs
        torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    # the stop gpu_check.sh puts on this process; part 4 sizes its training to end before it
    args.time_limit_s = float(os.environ.get("GPU_CHECK_TIMEOUT_S", 600))
    args.deadline = t_import + args.time_limit_s - 20  # perf_counter time; 20 s left to print the table
    rows, failed, times = [], [], []
    t_start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for name, part in PARTS:
            if name not in args.parts:
                continue
            t0, c0 = time.perf_counter(), cpu_s()
            try:
                rows += part(args, Path(tmp))
            except Exception as err:  # noqa: BLE001 - report the part, run the next
                traceback.print_exc()
                failed.append(name)
                rows.append((name, "FAILED", type(err).__name__, str(err).splitlines()[0][:160]))
            times.append((name, time.perf_counter() - t0, cpu_s() - c0))
            print(f"gpu_check: {name} done in {times[-1][1]:.0f} s", flush=True)
    device = torch.cuda.get_device_name(0) if args.device == "cuda" else "CPU (dry run)"
    print(f"\ngpu_check on {device}, torch {torch.__version__}, {time.perf_counter() - t_start:.0f} s")
    print("| part | measure | value | note |")
    print("|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(str(c) for c in row) + " |")
    for name, seconds, cpu in times:
        print(f"| time | {name} | {seconds:.0f} s | CPU {cpu:.0f} s |")
    print(f"| time | total, with start-up | {time.perf_counter() - t_import:.0f} s | CPU {cpu_s():.0f} s; "
          f"stop at {args.time_limit_s:g} s (GPU_CHECK_TIMEOUT_S) |")
    if failed:
        print(f"gpu_check: FAILED parts: {', '.join(failed)} (logs in {args.out})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
