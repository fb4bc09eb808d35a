"""vqbet-eval: roll a checkpoint out in gym-pusht and report PushT's metrics.

    vqbet-eval --checkpoint models/pusht_state --episodes 100 --start-seed 100000 \\
        --video runs/eval/rollout.mp4 --output runs/eval/results.json

Reports the paper's metric (coverage at episode end, mean over episodes; docs/vqbet.md §9) and LeRobot's (max
coverage over the episode, and success = max coverage >= 0.95). Execution is the official per-step replanning
with uniform temporal ensembling over the last W chunks (`--execution ensemble`, docs/vqbet.md §5) or LeRobot's
open-loop chunks (`--execution chunk`). Seeds are start-seed, start-seed + 1, ... (the official eval steps the
seed by one per episode).
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np
import torch

from vqbet_ros import constants
from vqbet_ros.model.checkpoint import LoadedCheckpoint, load_checkpoint
from vqbet_ros.training.pusht_rollout import ChunkPolicy, rollout, write_video

log = logging.getLogger("vqbet_ros.training.evaluate")


def checkpoint_policy(loaded: LoadedCheckpoint, seed: int, device: str = "cpu") -> ChunkPolicy:
    """A batched chunk policy over raw PushT observations: normalize, encode, sample, unnormalize."""
    policy, normalizer = loaded.policy, loaded.normalizer
    generator = torch.Generator(device=device).manual_seed(seed)

    @torch.no_grad()
    def act(history: dict[str, np.ndarray]) -> np.ndarray:
        obs = {}
        for key, value in history.items():
            tensor = torch.from_numpy(value).to(device)
            obs[key] = tensor if key.startswith(constants.IMAGES_PREFIX) else normalizer.normalize(key, tensor.float())
        tokens = policy.encode_observations(obs)  # (n, h, Dt)
        chunk = policy.predict_chunk(tokens, generator=generator)  # (n, W, A) normalized
        return normalizer.unnormalize(constants.ACTION, chunk).cpu().numpy()

    return act


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vqbet-eval", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n", 2)[2])
    parser.add_argument("--checkpoint", required=True, help="checkpoint directory (e.g. <run>/final)")
    parser.add_argument("--episodes", type=int, default=100)
    parser.add_argument("--start-seed", type=int, default=100000, help="episode i uses seed start-seed + i")
    parser.add_argument("--max-steps", type=int, default=300, help="episode length limit (gym-pusht: 300)")
    parser.add_argument("--execution", choices=["ensemble", "chunk"], default="ensemble")
    parser.add_argument("--temperature", type=float, help="code sampling temperature (default: checkpoint's)")
    parser.add_argument("--argmax", action="store_true", help="most likely codes instead of sampling")
    parser.add_argument("--batch", type=int, default=50, help="environments run in lock-step")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--video", help="mp4 of the first episode")
    parser.add_argument("--output", help="JSON with per-episode results and the summary")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.episodes < 1:
        print("vqbet-eval: error: --episodes must be >= 1", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    try:
        loaded = load_checkpoint(args.checkpoint, device=args.device)
    except (FileNotFoundError, ValueError) as err:
        print(f"vqbet-eval: error: {err}", file=sys.stderr)
        return 2
    heads = loaded.config.heads
    if args.temperature is not None:
        if args.temperature <= 0:
            print("vqbet-eval: error: --temperature must be > 0", file=sys.stderr)
            return 2
        heads.temperature = args.temperature
    heads.argmax = heads.argmax or args.argmax
    seeds = list(range(args.start_seed, args.start_seed + args.episodes))
    t0 = time.perf_counter()
    try:
        result = rollout(checkpoint_policy(loaded, args.start_seed, args.device), loaded.config.spec, seeds,
                         execution=args.execution, max_steps=args.max_steps, batch=args.batch,
                         record_first=bool(args.video))
    except ValueError as err:
        print(f"vqbet-eval: error: {err}", file=sys.stderr)
        return 2
    summary = result.summary()
    summary.update({"eval_time_s": round(time.perf_counter() - t0, 1), "execution": args.execution,
                    "temperature": heads.temperature, "argmax": heads.argmax, "start_seed": args.start_seed,
                    "checkpoint": str(args.checkpoint)})
    if args.video:
        Path(args.video).parent.mkdir(parents=True, exist_ok=True)
        write_video(result.frames, args.video, fps=loaded.config.spec.fps)
    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(json.dumps({
            "summary": summary,
            "episodes": [{"seed": s, "final_coverage": float(f), "max_coverage": float(m), "steps": int(n)}
                         for s, f, m, n in zip(result.seeds, result.final_coverage, result.max_coverage,
                                               result.steps)],
        }, indent=1))
    print(f"vqbet-eval: {summary['episodes']} episodes, seeds {seeds[0]}..{seeds[-1]}, {args.execution} execution")
    print(f"  final coverage (paper metric): {summary['final_coverage_mean']:.3f}")
    print(f"  max coverage (LeRobot):        {summary['max_coverage_mean']:.3f}")
    print(f"  success (max >= 0.95):         {summary['success_rate']:.2f}")
    print(f"  time: {summary['eval_time_s']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
