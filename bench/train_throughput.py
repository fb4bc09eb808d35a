"""Stage-2 training throughput (windows/s) before and after frame sharing, on synthetic batches.

    .venv/bin/python bench/train_throughput.py                      # state PushT model (config/train_pusht_state.yaml)
    .venv/bin/python bench/train_throughput.py --config config/train_pusht_image_end_to_end.yaml --batch 48 --sequence 16
    .venv/bin/python bench/train_throughput.py --config config/train_pusht_image.yaml --device cuda --amp

A "window" is one training sample of the official layout: an h-step observation history whose last position
predicts the executed W-step chunk. Variants, each timed on full optimiser steps (forward, backward, Adam):
- before: one h-window per sample, loss on all h positions (official); every frame is encoded h times.
- windows+last: one h-window per sample, loss on the last position only (heads run once per window).
- after: sequence samples of `--sequence` frames, each frame encoded once, tokens cut into the h-windows
  ending at every target (exactly the same windows), loss on the last position (the shipped recipe).
Prints windows/s for each and the after/before ratio. Synthetic data; the model is the config's. `--amp`: the
forward under bf16 autocast, as `vqbet-train` does on CUDA (`amp`) and in encoder pretraining on CPU.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from pathlib import Path

import torch

from vqbet_ros import constants
from vqbet_ros.config_io import load_yaml
from vqbet_ros.model.policy import VQBeTPolicy
from vqbet_ros.training.config import TrainConfig
from vqbet_ros.training.objective import PriorObjective

ROOT = Path(__file__).resolve().parents[1]


def batch(spec, n: int, frames: int, targets_from: int, device: torch.device):
    obs = {}
    if spec.joint_names:
        obs[constants.STATE] = torch.rand(n, frames, spec.state_dim) * 2 - 1
    for name, size in spec.low_dim.items():
        obs[constants.low_dim_key(name)] = torch.rand(n, frames, size) * 2 - 1
    for cam, shape in spec.cameras.items():
        obs[constants.image_key(cam)] = torch.randint(0, 256, (n, frames, *shape), dtype=torch.uint8)
    actions = torch.rand(n, frames, spec.chunk_size, spec.action_dim) * 2 - 1
    pad = torch.zeros(n, frames, spec.chunk_size, dtype=torch.bool)
    pad[:, :targets_from] = True  # sequence context positions
    return {k: v.to(device) for k, v in obs.items()}, actions.to(device), pad.to(device)


def time_variant(policy, spec, loss_positions: str, n: int, frames: int, steps: int, amp: bool = False) -> float:
    h = spec.n_obs_steps
    device = next(policy.parameters()).device
    objective = PriorObjective(policy, h, loss_positions)
    opt = torch.optim.Adam(policy.prior_parameters(), lr=1e-4)
    data = batch(spec, n, frames, h - 1 if frames > h else 0, device)
    windows = n * (frames - h + 1)
    elapsed = []
    for i in range(steps + 1):
        t0 = time.perf_counter()
        with torch.autocast(device.type, dtype=torch.bfloat16) if amp else contextlib.nullcontext():
            out = objective(*data)
        opt.zero_grad(set_to_none=True)
        out["loss"].backward()
        opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if i:  # the first step warms up allocators
            elapsed.append(time.perf_counter() - t0)
    elapsed.sort()
    return windows / elapsed[len(elapsed) // 2]  # median step


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default=str(ROOT / "config" / "train_pusht_state.yaml"))
    parser.add_argument("--batch", type=int, default=256, help="windows per step")
    parser.add_argument("--sequence", type=int, default=36, help="frames per sequence sample ('after')")
    parser.add_argument("--steps", type=int, default=5, help="timed steps per variant (median reported)")
    parser.add_argument("--image", type=int, default=0, help="add one camera of this square size")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu", help="cpu | cuda")
    parser.add_argument("--amp", action="store_true", help="forward under bf16 autocast")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cfg = load_yaml(TrainConfig, args.config)
    spec = cfg.model.spec
    if args.image:
        spec.cameras = {"cam": [3, args.image, args.image]}
    policy = VQBeTPolicy(cfg.model, load_pretrained=False).to(args.device)
    policy.freeze_tokenizer()
    policy.train()
    h = spec.n_obs_steps
    per_seq = args.sequence - h + 1
    results = {
        "before (h-windows, all positions)": time_variant(policy, spec, "all", args.batch, h, args.steps, args.amp),
        "windows, last position": time_variant(policy, spec, "last", args.batch, h, args.steps, args.amp),
        "after (sequences, frames encoded once, last position)": time_variant(
            policy, spec, "last", max(1, args.batch // per_seq), args.sequence, args.steps, args.amp),
    }
    before = results["before (h-windows, all positions)"]
    after = results["after (sequences, frames encoded once, last position)"]
    cams = ", ".join(f"{c} {'x'.join(map(str, s))}" for c, s in spec.cameras.items()) or "no camera"
    print(f"stage-2 training throughput, model of {args.config} ({cams}), {args.device}, "
          f"{'bf16 autocast' if args.amp else 'fp32'}, {args.threads} thread(s), "
          f"batch ~{args.batch} windows, sequences of {args.sequence} frames")
    for name, rate in results.items():
        print(f"  {name:55s} {rate:8.0f} windows/s")
    print(f"  after / before: {after / before:.2f}x")
    if args.json:
        Path(args.json).write_text(json.dumps({**results, "ratio": after / before}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
