"""The `vqbet-train` loops: stage 0 (optional encoder pretraining), stage 1 (tokenizer), stage 2 (prior),
resumable checkpoints.

Batch order is a pure function of (seed, step): stage 1 draws chunk indices from a generator seeded with the
step; stage 2 walks a per-epoch permutation. So a resumed run sees exactly the batches the uninterrupted run
would have seen, and each DDP rank takes its share (`rank::world_size`) of the same global batch.

A loss that is not finite stops the run (`TrainingDivergedError`, on every rank at the same point) before
anything more is saved: each step records the first such step on the device (no per-step sync), and the
record is read at every log step and before every checkpoint. `save_checkpoint` itself refuses non-finite
weights, the last guard.

Run directory:
    config.yaml                      the TrainConfig as run
    checkpoints/<stage>_<step>/      policy checkpoint + trainer_state.pt (optimiser, step, RNG); `latest` names
                                     the newest
    final/                           the policy checkpoint `load_checkpoint` and the policy node read
    evaluated/step_<n>/              checkpoints scored by the rollout evaluations during stage 2
    tensorboard/, metrics.jsonl, loss_curve.png
"""
from __future__ import annotations

import contextlib
import logging
import math
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel as DDP

from vqbet_ros import constants
from vqbet_ros.config_io import ConfigError, save_yaml, to_dict
from vqbet_ros.data.windows import WindowDataset, action_chunks
from vqbet_ros.model.checkpoint import load_checkpoint, save_checkpoint
from vqbet_ros.model.policy import VQBeTPolicy
from vqbet_ros.training import schedules
from vqbet_ros.training.config import TrainConfig
from vqbet_ros.training.weight_average import WeightAverage
from vqbet_ros.training.data import TrainingData
from vqbet_ros.training.distributed import DistInfo, all_reduce_mean, barrier, broadcast_module
from vqbet_ros.training.encoder_pretrain import pretrain_encoders
from vqbet_ros.training.feature_cache import with_frozen_outputs
from vqbet_ros.training.monitor import Monitor
from vqbet_ros.training.objective import PriorObjective, TokenizerObjective

log = logging.getLogger(__name__)

STATE_FILE = "trainer_state.pt"
LATEST_FILE = "latest"
KEEP_CHECKPOINTS = 2
VAL_BATCHES = 8


@dataclass
class Progress:
    """Where a run stands; saved in every checkpoint."""

    stage: int = 1       # 0 = encoder pretraining, 1 = tokenizer, 2 = prior, 3 = done
    step: int = 0        # steps done in the current stage
    elapsed_s: float = 0.0  # wall time spent in the current stage (stage 2's time budget)


def architecture_mismatch(expected: dict, got: dict, path: str = "model") -> str | None:
    """Key path of the first architecture field that differs between two config dicts, with both values."""
    for key in sorted(set(expected) | set(got)):
        a, b = expected.get(key, "<missing>"), got.get(key, "<missing>")
        if isinstance(a, dict) and isinstance(b, dict):
            found = architecture_mismatch(a, b, f"{path}.{key}")
            if found:
                return found
        elif a != b:
            return f"`{path}.{key}` is {b!r} in the checkpoint but {a!r} in the config"
    return None


class TrainingDivergedError(RuntimeError):
    """The loss became NaN or inf; the run stopped and nothing was saved after it."""


class Trainer:
    def __init__(self, cfg: TrainConfig, data: TrainingData, policy: VQBeTPolicy, info: DistInfo,
                 device: torch.device, monitor: Monitor):
        self.cfg, self.data, self.policy, self.info, self.device = cfg, data, policy, info, device
        self.monitor = monitor
        self.run_dir = Path(cfg.output_dir)
        self.progress = Progress()
        self.spec = cfg.model.spec
        self.tok_opt = torch.optim.Adam(policy.tokenizer.parameters(), lr=cfg.stage1.lr,
                                        weight_decay=cfg.stage1.weight_decay)
        self.prior_opts = self._prior_optimizers()
        self.amp = cfg.amp and device.type == "cuda"
        self.weight_average: WeightAverage | None = None  # stage 2's EMA (`stage2.ema_decay`)
        self._bad_step = torch.tensor(-1, device=device)  # first step (1-based) of this stage with a non-finite loss
        self._stage2_arrays: dict[str, np.ndarray] | None = None

    # ------------------------------------------------------------------------------------------ optimisers
    def _prior_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """Official: AdamW over GPT + code head + encoder, and a second AdamW over the offset head; LeRobot:
        one Adam over all (docs/vqbet.md §8). Weight decay only on weight matrices/kernels of the GPT, the encoder
        and the offset head; the code head and encoder get `other_weight_decay` (docs/vqbet.md §10.4)."""
        s2, p = self.cfg.stage2, self.policy
        def split(module, wd):
            decay = [q for n, q in module.named_parameters() if q.dim() >= 2 and "wpe" not in n]
            no_decay = [q for n, q in module.named_parameters() if q.dim() < 2 or "wpe" in n]
            return [{"params": decay, "weight_decay": wd}, {"params": no_decay, "weight_decay": 0.0}]
        main = split(p.prior, s2.weight_decay) + split(p.heads.code_head, s2.other_weight_decay) \
            + split(p.obs_encoder, s2.other_weight_decay)
        offset = split(p.heads.offset_head, s2.weight_decay)
        main = [g for g in main if g["params"]]
        if s2.optimizer == "official":
            return {"main": torch.optim.AdamW(main, lr=s2.lr, betas=tuple(s2.betas)),
                    "offset": torch.optim.AdamW(offset, lr=s2.lr, betas=tuple(s2.betas))}
        return {"main": torch.optim.Adam(main + offset, lr=s2.lr, betas=tuple(s2.betas))}

    def _frozen_parameters(self) -> list[torch.nn.Parameter]:
        """What stops training at `freeze_fraction` (official: GPT + code head + ResNet header,
        docs/vqbet.md §10.3)."""
        p = self.policy
        return [q for m in (p.prior, p.heads.code_head, p.obs_encoder) for q in m.parameters()]

    # ------------------------------------------------------------------------------------------ stage 0
    def run_stage0(self) -> dict[str, float]:
        """Encoder pretraining (`encoder_pretrain`) in one process (the encoders are then broadcast to the
        others); returns its final losses, steps and time on rank 0."""
        result = {}
        if self.info.is_main:
            result = pretrain_encoders(self.policy, self.data, self.cfg.encoder_pretrain, self.cfg.seed,
                                       self.device, self.monitor, self.cfg.log_every)
        barrier(self.info)
        for camera in self.policy.obs_encoder.cameras:
            broadcast_module(camera, self.info)
            camera.requires_grad_(not camera.config.freeze_encoder)
            camera.backbone.requires_grad_(not camera.frozen)
        self.progress = Progress(stage=1)
        self._save_checkpoint()
        return result

    # ------------------------------------------------------------------------------------------ stage 1
    def run_stage1(self) -> None:
        cfg, info = self.cfg.stage1, self.info
        chunks = torch.from_numpy(action_chunks(self.data.arrays[constants.ACTION], self.data.episode_ranges,
                                                self.spec.chunk_size, self.data.train_episodes))  # (M, W, A)
        if len(chunks) == 0:
            raise ValueError(f"no complete {self.spec.chunk_size}-step action chunk in the training episodes; "
                             "lower model.spec.chunk_size or add longer episodes")
        objective = TokenizerObjective(self.policy).to(self.device)
        model = DDP(objective) if info.enabled else objective
        self.policy.tokenizer.train()
        per_rank = max(1, cfg.batch_size // info.world_size)
        self.monitor.start_stage(1, cfg.steps, self.progress.step)
        t_last, n_last = time.perf_counter(), self.progress.step
        while self.progress.step < cfg.steps:
            step = self.progress.step
            rng = np.random.default_rng([self.cfg.seed, 1, step])
            ids = rng.integers(0, len(chunks), per_rank * info.world_size)[info.rank::info.world_size]
            batch = chunks[ids].to(self.device)
            out = self._forward(model, batch)
            self._note_loss(out["loss"])
            self.tok_opt.zero_grad(set_to_none=True)
            out["loss"].backward()
            self.tok_opt.step()
            self.progress.step += 1
            if self.progress.step % self.cfg.log_every == 0 or self.progress.step == cfg.steps:
                self._check_loss_finite()
                now = time.perf_counter()
                rate = (self.progress.step - n_last) * per_rank * info.world_size / max(now - t_last, 1e-9)
                t_last, n_last = now, self.progress.step
                scalars = {k: all_reduce_mean(float(v.detach()), info, self.device) for k, v in out.items()}
                with torch.no_grad():
                    scalars.update(self.policy.code_usage(batch))
                scalars["samples_per_s"] = rate
                self.monitor.log(1, self.progress.step, scalars)
            self._maybe_checkpoint()
        self.monitor.end_stage()
        broadcast_module(self.policy.tokenizer, info)  # EMA codebooks: rank 0's (DDP broadcasts buffers)
        self.policy.freeze_tokenizer()
        self.progress = Progress(stage=2)
        self._save_checkpoint()

    # ------------------------------------------------------------------------------------------ stage 2
    def _arrays(self) -> dict[str, np.ndarray]:
        """Stage 2's arrays: frames of a camera with a frozen encoder part replaced by that part's outputs."""
        if self._stage2_arrays is None:
            encoder = self.policy.obs_encoder
            frozen = {key: camera for key, camera in zip(encoder.camera_keys, encoder.cameras) if camera.frozen}
            self._stage2_arrays = with_frozen_outputs(self.data.arrays, frozen, self.device,
                                                   self.cfg.stage2.feature_cache_dir)
        return self._stage2_arrays

    def _dataset(self, episodes: list[int]) -> WindowDataset:
        seq = self.cfg.stage2.sequence_length
        return WindowDataset(self._arrays(), self.data.episode_ranges, self.spec.n_obs_steps,
                             self.spec.chunk_size, episodes=episodes, sequence_length=seq or None)

    def samples_per_step(self) -> int:
        """Dataset samples per global step: windows, or sequences holding about `batch_size` windows."""
        s2 = self.cfg.stage2
        per_sample = 1 if not s2.sequence_length else s2.sequence_length - self.spec.n_obs_steps + 1
        n = max(1, math.ceil(s2.batch_size / per_sample))
        return self.info.world_size * max(1, math.ceil(n / self.info.world_size))

    def _batch_ids(self, step: int, n: int, per_step: int) -> np.ndarray:
        """Global batch `step` of an endless sequence of per-epoch permutations; this rank's share."""
        steps_per_epoch = max(1, n // per_step)
        epoch, j = divmod(step, steps_per_epoch)
        order = np.random.default_rng([self.cfg.seed, 2, epoch]).permutation(n)
        if n < per_step:
            order = np.resize(order, per_step)
        ids = order[j * per_step:(j + 1) * per_step]
        return ids[self.info.rank::self.info.world_size]

    def _to_device(self, batch: dict[str, np.ndarray]):
        obs_keys = [k for k in batch if k.startswith("observation.")]
        obs = {k: torch.from_numpy(batch[k]).to(self.device, non_blocking=True) for k in obs_keys}
        actions = torch.from_numpy(batch[constants.ACTION]).to(self.device)
        pad = torch.from_numpy(batch[constants.ACTION_IS_PAD]).to(self.device)
        return obs, actions, pad

    def _prior_train_mode(self) -> None:
        self.policy.train()
        if not self.cfg.stage2.dropout_in_training:
            # Official training runs in eval mode, so GPT dropout never acts (docs/vqbet.md §10.2); only the GPT and
            # heads go to eval so that image crops stay random.
            self.policy.prior.eval()
            self.policy.heads.eval()

    def _wrap_prior(self, frozen: bool):
        if frozen:
            for q in self._frozen_parameters():
                q.requires_grad_(False)
        objective = PriorObjective(self.policy, self.spec.n_obs_steps, self.cfg.stage2.loss_positions)
        return DDP(objective) if self.info.enabled else objective

    def _averaged(self):
        """The policy with the averaged weights while the block runs (the live ones without an average)."""
        if self.weight_average is None:
            return contextlib.nullcontext(self.policy)
        return self.weight_average.applied(self.policy)

    def run_stage2(self) -> None:
        s2, info = self.cfg.stage2, self.info
        if s2.ema_decay and self.weight_average is None:
            self.weight_average = WeightAverage(self.policy, s2.ema_decay)
        rollout_every_s = self.cfg.rollout.every_min * 60.0
        next_rollout_s = (math.floor(self.progress.elapsed_s / rollout_every_s) + 1) * rollout_every_s \
            if rollout_every_s else math.inf
        train_set = self._dataset(self.data.train_episodes)
        val_set = self._dataset(self.data.val_episodes) if self.data.val_episodes else None
        per_step = self.samples_per_step()
        time_limit_s = s2.time_limit_min * 60.0
        frac = schedules.progress(self.progress.step, s2.steps, self.progress.elapsed_s, time_limit_s)
        frozen = schedules.prior_frozen(frac, s2.freeze_fraction)
        model = self._wrap_prior(frozen)
        self._prior_train_mode()
        self.monitor.start_stage(2, s2.steps, self.progress.step)
        t_stage = time.perf_counter() - self.progress.elapsed_s
        t_last, windows_since = time.perf_counter(), 0.0
        while True:
            self.progress.elapsed_s = time.perf_counter() - t_stage
            frac = schedules.progress(self.progress.step, s2.steps, self.progress.elapsed_s, time_limit_s)
            if self.progress.step >= s2.steps or frac >= 1.0:
                break
            if not frozen and schedules.prior_frozen(frac, s2.freeze_fraction):
                frozen = True
                log.info("step %d: freezing GPT, code head and encoder (freeze_fraction %.2f)",
                         self.progress.step, s2.freeze_fraction)
                model = self._wrap_prior(frozen)
            lr = s2.lr * schedules.lr_multiplier(self.progress.step, frac, s2.warmup_steps, s2.schedule,
                                                 s2.min_lr_ratio)
            for opt in self.prior_opts.values():
                for group in opt.param_groups:
                    group["lr"] = lr
            ids = self._batch_ids(self.progress.step, len(train_set), per_step)
            obs, actions, pad = self._to_device(train_set.get_batch(ids))
            out = self._forward(model, obs, actions, pad)
            self._note_loss(out["loss"])
            for opt in self.prior_opts.values():
                opt.zero_grad(set_to_none=True)
            out["loss"].backward()
            if s2.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(self.policy.prior_parameters(), s2.grad_clip)
            for name, opt in self.prior_opts.items():
                if not (frozen and name == "main" and s2.optimizer == "official"):
                    opt.step()  # official: after the freeze only the offset-head optimiser steps
            if self.weight_average is not None:
                self.weight_average.update(self.policy)
            self.progress.step += 1
            windows_since += float(out["windows"])
            if self.progress.step % self.cfg.log_every == 0:
                self._check_loss_finite()
                now = time.perf_counter()
                scalars = {k: all_reduce_mean(float(v.detach()), info, self.device) for k, v in out.items()
                           if k != "windows"}
                scalars["samples_per_s"] = all_reduce_mean(windows_since, info, self.device) * info.world_size \
                    / max(now - t_last, 1e-9)
                scalars["lr"] = lr
                scalars["progress"] = frac
                t_last, windows_since = now, 0.0
                self.monitor.log(2, self.progress.step, scalars)
            if val_set is not None and self.cfg.val_every and self.progress.step % self.cfg.val_every == 0:
                self.monitor.log(2, self.progress.step, {"val_loss": self.validate(val_set, per_step)})
            if time.perf_counter() - t_stage >= next_rollout_s:
                self.evaluate_rollouts(time.perf_counter() - t_stage)
                next_rollout_s += rollout_every_s
            self._maybe_checkpoint()
        self.monitor.end_stage()
        if val_set is not None:
            self.monitor.log(2, self.progress.step, {"val_loss": self.validate(val_set, per_step)})
        if rollout_every_s:
            self.evaluate_rollouts(time.perf_counter() - t_stage)
        self.progress = Progress(stage=3, step=self.progress.step, elapsed_s=self.progress.elapsed_s)

    def evaluate_rollouts(self, elapsed_s: float) -> None:
        """Closed-loop PushT episodes with the (averaged) policy; scalars `rollout_*` against wall-clock
        minutes. Rank 0 evaluates and keeps the checkpoint it scored; the others wait."""
        if self.info.is_main:
            from vqbet_ros.model.normalize import Normalizer
            from vqbet_ros.pusht.rollout import rollout
            from vqbet_ros.training.evaluate import checkpoint_policy

            r = self.cfg.rollout
            seeds = list(range(r.start_seed, r.start_seed + r.episodes))
            with self._averaged() as policy:
                policy.eval()
                result = rollout(checkpoint_policy(policy, Normalizer(self.data.stats), str(self.device)),
                                 self.spec, seeds, protocol=r.protocol, batch=len(seeds))
                save_checkpoint(self.run_dir / "evaluated" / f"step_{self.progress.step:07d}", self.cfg.model,
                                policy, self.data.stats, metadata={"step": self.progress.step,
                                                                   "elapsed_min": elapsed_s / 60.0})
            self._prior_train_mode()
            summary = result.summary()
            self.monitor.log(2, self.progress.step, {
                "rollout_final_coverage": summary["final_coverage_mean"],
                "rollout_max_coverage": summary["max_coverage_mean"],
                "rollout_success_end": summary["success_end_mean"],
                "rollout_success_ever": summary["success_ever_mean"],
                "elapsed_min": elapsed_s / 60.0})
        barrier(self.info)

    @torch.no_grad()
    def validate(self, val_set: WindowDataset, per_step: int) -> float:
        """Mean stage-2 loss over the first batches of the validation episodes (fixed code-sampling seed)."""
        objective = PriorObjective(self.policy, self.spec.n_obs_steps, self.cfg.stage2.loss_positions)
        was_training = self.policy.training
        self.policy.eval()
        state = torch.get_rng_state()
        torch.manual_seed(self.cfg.seed)
        losses = []
        per_rank = max(1, per_step // self.info.world_size)
        for b in range(min(VAL_BATCHES, math.ceil(len(val_set) / per_rank))):
            ids = np.arange(b * per_rank, min((b + 1) * per_rank, len(val_set)))
            with self._autocast():
                losses.append(float(objective(*self._to_device(val_set.get_batch(ids)))["loss"]))
        torch.set_rng_state(state)
        if was_training:
            self._prior_train_mode()
        return all_reduce_mean(float(np.mean(losses)), self.info, self.device)

    # ------------------------------------------------------------------------------------------ divergence
    def _note_loss(self, loss: torch.Tensor) -> None:
        """Record the first step whose loss is not finite, on the device (reading it would sync every step)."""
        bad = ~torch.isfinite(loss.detach()) & (self._bad_step < 0)
        self._bad_step = torch.where(bad, torch.full_like(self._bad_step, self.progress.step + 1), self._bad_step)

    def _check_loss_finite(self) -> None:
        """Raise `TrainingDivergedError` on every rank if any rank saw a non-finite loss (collective call)."""
        first = int(self._bad_step)
        if all_reduce_mean(float(first >= 0), self.info, self.device) == 0:
            return
        raise self._diverged(f"the loss became NaN or inf {f'at step {first}' if first >= 0 else 'on another rank'}")

    def _forward(self, model, *inputs) -> dict[str, torch.Tensor]:
        """`model(*inputs)`, reporting a forward pass that failed on non-finite values as the divergence it is.

        Weights that grew without bound make the code logits NaN, and stage 2's code sampling (torch.multinomial)
        refuses them before a loss exists to check; a weight may also be NaN itself. DDP keeps the weights of
        every rank equal, so every rank raises at the same step."""
        try:
            with self._autocast():
                return model(*inputs)
        except RuntimeError as err:
            bad = next((n for n, q in self.policy.named_parameters() if not torch.isfinite(q).all()), None)
            if bad is None and "nan" not in str(err).lower():
                raise
            step = self.progress.step + 1
            raise self._diverged(f"weight `{bad}` is NaN or inf at step {step}" if bad else
                                 f"the forward pass met NaN or inf values at step {step} ({err})") from None

    def _diverged(self, what: str) -> TrainingDivergedError:
        lr = "stage1.lr" if self.progress.stage == 1 else "stage2.lr (or set stage2.grad_clip)"
        return TrainingDivergedError(
            f"stage {self.progress.stage}: {what}; training stopped and no checkpoint was written after that "
            f"step (`{self.run_dir / 'checkpoints'}` keeps any earlier ones). Lower {lr}, or check the data "
            "for extreme values"
        )

    # ------------------------------------------------------------------------------------------ checkpoints
    def _autocast(self):
        if self.amp:
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _maybe_checkpoint(self) -> None:
        every = self.cfg.checkpoint_every
        if every and self.progress.step % every == 0:
            self._save_checkpoint()

    def _save_checkpoint(self) -> None:
        """Rank 0 writes the policy checkpoint plus the trainer state; older ones beyond the last 2 go."""
        self._check_loss_finite()
        barrier(self.info)
        if self.info.is_main:
            name = f"stage{self.progress.stage}_{self.progress.step:07d}"
            root = self.run_dir / "checkpoints"
            with self._averaged() as policy:
                directory = save_checkpoint(root / name, self.cfg.model, policy, self.data.stats,
                                            metadata={"stage": self.progress.stage, "step": self.progress.step})
            state = {
                "stage": self.progress.stage, "step": self.progress.step, "elapsed_s": self.progress.elapsed_s,
                "tokenizer_optimizer": self.tok_opt.state_dict(),
                "prior_optimizers": {k: o.state_dict() for k, o in self.prior_opts.items()},
                "torch_rng": torch.get_rng_state(),
                "weight_average": self.weight_average.state_dict() if self.weight_average else None,
                "live_weights": self.policy.state_dict() if self.weight_average else None,
            }
            tmp = directory / f".{STATE_FILE}.tmp"
            torch.save(state, tmp)
            tmp.replace(directory / STATE_FILE)
            (root / LATEST_FILE).write_text(name + "\n")
            for old in sorted(p for p in root.iterdir() if p.is_dir() and p.name.startswith("stage"))[:-KEEP_CHECKPOINTS]:
                shutil.rmtree(old, ignore_errors=True)
            log.info("checkpoint %s", directory)
        barrier(self.info)

    def resume(self) -> None:
        """Continue from `checkpoints/latest`: weights, optimiser state, stage, step and RNG."""
        root = self.run_dir / "checkpoints"
        latest = root / LATEST_FILE
        if not latest.is_file():
            raise FileNotFoundError(f"--resume: no `{latest}`; nothing to resume in `{self.run_dir}` "
                                    "(drop --resume to start fresh)")
        directory = root / latest.read_text().strip()
        loaded = load_checkpoint_matching(directory, self.cfg)
        self.data.stats = loaded.stats
        state = torch.load(directory / STATE_FILE, map_location="cpu", weights_only=True)
        # The checkpoint holds the averaged weights when there is an average; the live ones are in its state.
        self.policy.load_state_dict(state["live_weights"] if state.get("live_weights") else
                                    loaded.policy.state_dict())
        if state.get("weight_average"):
            self.weight_average = WeightAverage(self.policy, float(state["weight_average"]["decay"]))
            self.weight_average.load_state_dict(state["weight_average"])
        self.tok_opt.load_state_dict(state["tokenizer_optimizer"])
        for k, opt in self.prior_opts.items():
            opt.load_state_dict(state["prior_optimizers"][k])
        torch.set_rng_state(state["torch_rng"])
        self.progress = Progress(int(state["stage"]), int(state["step"]), float(state["elapsed_s"]))
        log.info("resumed from %s: stage %d step %d", directory, self.progress.stage, self.progress.step)

    def save_final(self, metadata: dict) -> Path | None:
        self._check_loss_finite()
        if not self.info.is_main:
            return None
        with self._averaged() as policy:
            return save_checkpoint(self.run_dir / "final", self.cfg.model, policy, self.data.stats, metadata)



def load_checkpoint_matching(directory: Path, cfg: TrainConfig):
    """Load a checkpoint, refusing one whose architecture differs from `cfg.model` (the field is named)."""
    loaded = load_checkpoint(directory)
    problem = architecture_mismatch(to_dict(cfg.model), to_dict(loaded.config))
    if problem:
        raise ConfigError(f"checkpoint `{directory}` does not match this run's architecture: {problem}; "
                          "use the checkpoint's model settings or start a new output_dir")
    return loaded


def save_run_config(cfg: TrainConfig, info: DistInfo) -> None:
    if info.is_main:
        Path(cfg.output_dir).mkdir(parents=True, exist_ok=True)
        save_yaml(cfg, Path(cfg.output_dir) / "config.yaml")
