"""vqbet-train: train a VQ-BeT policy, stage 1 (residual VQ-VAE tokenizer) then stage 2 (GPT prior + heads).

    # both stages (after encoder pretraining when `encoder_pretrain.targets` is set), PushT state
    # (the shipped models/pusht_state recipe)
    vqbet-train --config config/train_pusht_state.yaml output_dir=runs/pusht
    # any field can be overridden as key.path=value (parsed as YAML)
    vqbet-train --config config/train_pusht_state.yaml stage2.lr=3e-4 stage2.time_limit_min=30
    # continue an interrupted run from runs/pusht/checkpoints/latest (same step, optimiser state, RNG)
    vqbet-train --config config/train_pusht_state.yaml output_dir=runs/pusht --resume
    # one stage alone: the tokenizer only, or the prior from a given stage-1 checkpoint
    vqbet-train --config ... --stage 1
    vqbet-train --config ... --stage 2 --init runs/tok/final
    # several processes / GPUs / nodes (DistributedDataParallel; gloo on CPU, NCCL on CUDA)
    torchrun --nproc_per_node 2 $(which vqbet-train) --config ...

The result is `<output_dir>/final/`, a checkpoint directory the policy node and `vqbet-eval` load as is.
"""
from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

import numpy as np
import torch

from vqbet_ros.config_io import ConfigError, load_yaml
from vqbet_ros.model.policy import VQBeTPolicy
from vqbet_ros.training.config import TrainConfig
from vqbet_ros.training.data import load_training_data
from vqbet_ros.training.distributed import DistInfo, cleanup, init_distributed
from vqbet_ros.training.monitor import Monitor, plot_loss_curves, plot_rollout_curve
from vqbet_ros.training.trainer import Trainer, TrainingDivergedError, load_checkpoint_matching, save_run_config

log = logging.getLogger("vqbet_ros.training")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vqbet-train", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n", 2)[2])
    parser.add_argument("--config", required=True, help="TrainConfig YAML (see config/train_*.yaml)")
    parser.add_argument("overrides", nargs="*", help="key.path=value overrides, e.g. stage2.lr=1e-4")
    parser.add_argument("--stage", choices=["all", "1", "2"], default="all",
                        help="all: tokenizer then prior; 1: tokenizer only; 2: prior only (needs --init)")
    parser.add_argument("--init", help="checkpoint directory whose weights and stats start the run "
                                       "(a stage-1 result for --stage 2)")
    parser.add_argument("--resume", action="store_true", help="continue from <output_dir>/checkpoints/latest")
    parser.add_argument("--no-progress", action="store_true", help="log lines instead of a progress bar")
    return parser


def run(cfg: TrainConfig, stage: str = "all", init: str | None = None, resume: bool = False,
        progress_bar: bool = True) -> tuple[VQBeTPolicy, DistInfo, dict]:
    """Train as configured; returns this process's policy, its DistInfo and a summary (rank 0 saves)."""
    info, device = init_distributed(cfg.device)
    try:
        if cfg.num_threads:
            torch.set_num_threads(cfg.num_threads)
        # Weights that weight decay shrinks towards zero (units no gradient reaches) become subnormal floats,
        # which x86 CPUs compute with ~100x slower: an SO-101 state run fell from ~1500 to ~300 windows/s after
        # 1,750 steps, with 2 of 3 weight matrices of the heads holding thousands of subnormals. Flushed to zero
        # they cost nothing and change no result that matters (|x| < 1.2e-38).
        torch.set_flush_denormal(True)
        torch.manual_seed(cfg.seed + info.rank)  # code sampling and crops differ per rank; weights are synced
        np.random.seed(cfg.seed)
        if stage == "2" and not (init or resume):
            raise ConfigError("--stage 2 needs --init <stage-1 checkpoint dir> (or --resume)")
        if Path(cfg.output_dir).exists() and not Path(cfg.output_dir).is_dir():
            raise ConfigError(f"`output_dir`: `{cfg.output_dir}` is a file, expected a run directory (it will hold "
                              "checkpoints/ and final/); choose another path")
        init_ckpt = load_checkpoint_matching(init, cfg) if init else None
        pretrain = cfg.encoder_pretrain.targets and stage == "all" and not resume
        data = load_training_data(cfg.data, cfg.model.spec, stats=init_ckpt.stats if init_ckpt else None,
                                  targets=cfg.encoder_pretrain.targets if pretrain else ())
        torch.manual_seed(cfg.seed)  # identical initial weights on every rank
        policy = VQBeTPolicy(cfg.model).to(device)
        torch.manual_seed(cfg.seed + info.rank)
        if init_ckpt is not None:
            policy.load_state_dict(init_ckpt.policy.state_dict())
        save_run_config(cfg, info)
        monitor = Monitor(cfg.output_dir, enabled=info.is_main, progress_bar=progress_bar)
        trainer = Trainer(cfg, data, policy, info, device, monitor)
        if resume:
            trainer.resume()
        elif stage == "2":
            policy.freeze_tokenizer()
            trainer.progress.stage = 2
        t0 = time.perf_counter()
        encoder_result = trainer.run_stage0() if pretrain else {}
        t1 = time.perf_counter()
        if trainer.progress.stage == 1:
            trainer.run_stage1()
        stage1_s = time.perf_counter() - t1
        if trainer.progress.stage == 2 and stage != "1":
            trainer.run_stage2()
        if stage == "1":
            policy.freeze_tokenizer()
        total_s = time.perf_counter() - t0
        pretrain_figures = {f"encoder_pretrain_{k}": float(f"{v:.4g}") for k, v in encoder_result.items()}
        summary = {"stage": stage, **pretrain_figures,
                   "stage1_time_s": round(stage1_s, 1), "train_time_s": round(total_s, 1),
                   "stage2_steps": trainer.progress.step if stage != "1" else 0,
                   "world_size": info.world_size, "device": str(device), "seed": cfg.seed,
                   "data": cfg.data.path}
        final = trainer.save_final(summary)
        monitor.close()
        if info.is_main:
            plot_loss_curves(cfg.output_dir)
            plot_rollout_curve(cfg.output_dir)
            summary["final_checkpoint"] = str(final)
        return policy, info, summary
    finally:
        cleanup(info)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        cfg = load_yaml(TrainConfig, args.config, args.overrides)
        _, info, summary = run(cfg, args.stage, args.init, args.resume, progress_bar=not args.no_progress)
    except (ConfigError, FileNotFoundError, KeyError, ValueError, TrainingDivergedError) as err:
        print(f"vqbet-train: error: {err.args[0] if isinstance(err, KeyError) else err}", file=sys.stderr)
        return 2
    if info.is_main:
        print(f"vqbet-train: done in {summary['train_time_s']:.0f} s; final checkpoint: {summary['final_checkpoint']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
