"""vqbet-eval: roll a checkpoint out in PushT and report its metrics.

    vqbet-eval --checkpoint models/pusht_state --episodes 100 --start-seed 100000 \\
        --video runs/eval/rollout.mp4 --output runs/eval/results.json
    vqbet-eval --checkpoint models/pusht_state --protocol gym     # gym-pusht's episodes instead
    vqbet-eval --checkpoint models/pusht_image --compile-mode freeze --autocast bf16   # the node's fast path

Protocols (`--protocol`, docs/pusht-evaluation.md): `official` (default) is the public VQ-BeT evaluation the
paper's PushT table is made with: its reset distribution, 302 steps, no early end; `gym` is gym-pusht's
PushT-v0: its reset distribution, 300 steps, the episode ends when the coverage passes 0.95. Reported: the
paper's metric, coverage after the last step (mean over episodes, docs/vqbet.md §9), LeRobot's max coverage, and
success (coverage > 0.95) at the end and at any step, each as mean ± standard error.

Execution is the official per-step replanning with uniform temporal ensembling over the last W chunks
(`--execution ensemble`, docs/vqbet.md §5) or LeRobot's open-loop chunks (`--execution open_loop`). Episode i uses
seed start-seed + i for its initial state and for its own code-sampling generator, so its result is the same
whatever `--batch` is and whichever episodes run beside it.

`--runtime` runs the policy as the policy node does, through `vqbet_ros.runtime.PolicyRuntime` fed the newest
observation each step: its per-frame feature cache, its chunk execution and, with `--compile-mode` /
`--autocast` (which imply `--runtime`), its optimized inference path behind the parity gate
(`runtime/fast_path.py`), whose verdict the summary reports. Episodes then run one at a time (the runtime holds
one episode), each with its seed's code-sampling generator as above; a code can still flip against the direct
path, because the runtime normalizes the float64 joint states where the direct path normalizes float32.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import time
import typing
from pathlib import Path

import numpy as np
import torch

from vqbet_ros import constants
from vqbet_ros.data.video_encoder import write_video
from vqbet_ros.model.checkpoint import load_checkpoint
from vqbet_ros.model.normalize import Normalizer
from vqbet_ros.model.policy import VQBeTPolicy
from vqbet_ros.model.scheduler import EXECUTIONS
from vqbet_ros.pusht.rollout import ChunkPolicy, rollout
from vqbet_ros.runtime.config import RuntimeConfig
from vqbet_ros.runtime.engine import PolicyRuntime

log = logging.getLogger("vqbet_ros.training.evaluate")


def checkpoint_policy(policy: VQBeTPolicy, normalizer: Normalizer, device: str = "cpu") -> ChunkPolicy:
    """A chunk policy over raw PushT observations: normalize, encode, sample, unnormalize.

    Each episode samples its codes from a generator seeded with the episode's seed, and the model runs on one
    episode at a time: a batched matrix product sums in another order than a single row's, and those last-bit
    differences grow into different episodes within a few hundred steps of contact physics. So an episode's
    result is the same alone or inside any batch, at the price of one model call per episode and step.
    """
    generators: dict[int, torch.Generator] = {}

    @torch.no_grad()
    def act(history: dict[str, np.ndarray], seeds: list[int]) -> np.ndarray:
        chunks = []
        for row, seed in enumerate(seeds):
            if seed not in generators:
                generators[seed] = torch.Generator(device=device).manual_seed(seed)
            obs = {}
            for key, value in history.items():
                tensor = torch.from_numpy(value[row:row + 1]).to(device)  # (1, h, ...)
                obs[key] = tensor if key.startswith(constants.IMAGES_PREFIX) \
                    else normalizer.normalize(key, tensor.float())
            tokens = policy.encode_observations(obs)  # (1, h, Dt)
            chunks.append(policy.predict_chunk(tokens, generator=generators[seed]))  # (1, W, A) normalized
        return normalizer.unnormalize(constants.ACTION, torch.cat(chunks)).cpu().numpy()

    return act


def runtime_policy(runtime: PolicyRuntime) -> ChunkPolicy:
    """A chunk policy that steps `runtime` on the newest observation of one episode and returns the runtime's
    command for now as a one-step chunk: the runtime executes chunks (ensembling or open loop) itself, so the
    rollout applies one command per call (its `open_loop` execution). A new seed starts a new episode: history
    and plan cleared, codes sampled from a generator seeded with it. Stamps run on one timeline across
    episodes, one control period per step, so the runtime never sees its clock step back."""
    spec = runtime.spec
    episode = {"seed": None, "tick": 0}

    def act(history: dict[str, np.ndarray], seeds: list[int]) -> np.ndarray:
        if len(seeds) != 1:
            raise ValueError(f"the runtime runs one episode at a time, got a batch of {len(seeds)}")
        if seeds[0] != episode["seed"]:
            runtime.reseed(seeds[0])
            runtime.reset()
            episode["seed"] = seeds[0]
        tick = episode["tick"]
        episode["tick"] += 1
        now_s = tick * spec.dt
        for camera in spec.cameras:
            runtime.put_image(camera, history[constants.image_key(camera)][0, -1].transpose(1, 2, 0), now_s)
        if spec.joint_names:
            runtime.put_joint_state(history[constants.STATE][0, -1], now_s)
        for name in spec.low_dim:
            runtime.put_low_dim(name, history[constants.low_dim_key(name)][0, -1], now_s)
        with torch.inference_mode():
            result = runtime.step(now_s, tick=tick)
        if result.status != "running":
            raise RuntimeError(f"the runtime stopped at step {tick} of seed {seeds[0]}: {result.status} "
                               f"{result.problems}")
        return result.command[None, None]  # (1, 1, A) env units

    return act


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vqbet-eval", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n", 2)[2])
    parser.add_argument("--checkpoint", required=True, help="checkpoint directory (e.g. <run>/final)")
    parser.add_argument("--episodes", type=int, default=100)
    parser.add_argument("--start-seed", type=int, default=100000, help="episode i uses seed start-seed + i")
    parser.add_argument("--protocol", choices=["official", "gym"], default="official",
                        help="official: the public VQ-BeT evaluation (302 steps, no early end, the paper's); "
                             "gym: gym-pusht's PushT-v0 (ends at success or after 300 steps)")
    parser.add_argument("--max-steps", type=int, help="episode length (default: the protocol's, 302 or 300)")
    parser.add_argument("--execution", choices=EXECUTIONS, default="ensemble")
    parser.add_argument("--temperature", type=float, help="code sampling temperature (default: checkpoint's)")
    parser.add_argument("--argmax", action="store_true", help="most likely codes instead of sampling")
    parser.add_argument("--batch", type=int, default=50, help="environments run in lock-step")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--runtime", action="store_true",
                        help="run the policy through the deployment runtime, as the policy node does")
    choices = {name: typing.get_args(hint) for name, hint in typing.get_type_hints(RuntimeConfig).items()}
    parser.add_argument("--compile-mode", choices=choices["compile_mode"], default="none",
                        help="the runtime's optimized path, e.g. freeze (implies --runtime; see RuntimeConfig)")
    parser.add_argument("--autocast", choices=choices["autocast"], default="none",
                        help="bf16 autocast in the runtime (implies --runtime; see RuntimeConfig)")
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
    if args.max_steps is not None and args.max_steps < 1:
        print("vqbet-eval: error: --max-steps must be >= 1", file=sys.stderr)
        return 2
    seeds = list(range(args.start_seed, args.start_seed + args.episodes))
    runtime = None
    policy = checkpoint_policy(loaded.policy, loaded.normalizer, args.device)
    execution, batch = args.execution, args.batch
    if args.runtime or args.compile_mode != "none" or args.autocast != "none":
        config = RuntimeConfig(execution=args.execution, device=args.device, compile_mode=args.compile_mode,
                               autocast=args.autocast, seed=args.start_seed)
        runtime = PolicyRuntime(loaded, config)
        runtime.warmup()  # compiles the optimized path, as the node does at configure
        # one command per call (see runtime_policy), applied as it comes
        policy, execution, batch = runtime_policy(runtime), "open_loop", 1
    t0 = time.perf_counter()
    try:
        result = rollout(policy, loaded.config.spec, seeds, protocol=args.protocol, execution=execution,
                         batch=batch, record_first=bool(args.video), max_steps=args.max_steps)
    except ValueError as err:
        print(f"vqbet-eval: error: {err}", file=sys.stderr)
        return 2
    summary = result.summary()
    if runtime is not None:
        gate = runtime.inference
        summary["inference"] = {"path": gate.description, "gate": gate.state, "reason": gate.reason,
                                "max_difference": gate.max_difference}
    summary.update({"eval_time_s": round(time.perf_counter() - t0, 1), "execution": args.execution,
                    "temperature": heads.temperature, "argmax": heads.argmax, "start_seed": args.start_seed,
                    "checkpoint": str(args.checkpoint)})
    if args.video:
        write_video(result.frames, args.video, fps=loaded.config.spec.fps)
    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        episodes = [e.to_dict() for e in result.episodes]
        Path(args.output).write_text(json.dumps({"summary": summary, "episodes": episodes}, indent=1))
    print(f"vqbet-eval: {summary['episodes']} episodes, seeds {seeds[0]}..{seeds[-1]}, {args.protocol} protocol, "
          f"{args.execution} execution")
    print(format_summary(summary))
    if runtime is not None:
        inference = summary["inference"]
        print(f"  runtime inference: {inference['path']}, gate {inference['gate']}"
              + (f" ({inference['reason']})" if inference["reason"] else ""))
    print(f"  time: {summary['eval_time_s']:.0f} s")
    return 0


def format_summary(summary: dict) -> str:
    """The metrics as mean ± standard error, one per line."""
    rows = [("final coverage (paper metric)", "final_coverage"), ("max coverage (LeRobot)", "max_coverage"),
            ("success at the end", "success_end"), ("success at any step", "success_ever")]
    return "\n".join(f"  {label + ':':31s}{summary[key + '_mean']:.3f} ± {summary[key + '_se']:.3f}"
                     for label, key in rows)


if __name__ == "__main__":
    sys.exit(main())
