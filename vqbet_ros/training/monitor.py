"""Progress bar, TensorBoard scalars, `metrics.jsonl` and the loss-curve PNG of a run (rank 0 only)."""
from __future__ import annotations

import json
import logging
from pathlib import Path

log = logging.getLogger(__name__)

STAGE_NAMES = {0: "stage0_encoder", 1: "stage1_tokenizer", 2: "stage2_prior"}


class Monitor:
    def __init__(self, run_dir: str | Path, enabled: bool = True, progress_bar: bool = True):
        self.run_dir = Path(run_dir)
        self.enabled = enabled
        self.progress_bar = progress_bar
        self._bar = None
        self._writer = None
        self._metrics = None
        if enabled:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            self._metrics = open(self.run_dir / "metrics.jsonl", "a")
            try:
                from torch.utils.tensorboard import SummaryWriter
                self._writer = SummaryWriter(str(self.run_dir / "tensorboard"))
            except ImportError:  # tensorboard is the `train` extra; the run goes on without it
                log.warning("tensorboard is not installed; scalars go to metrics.jsonl only")

    def start_stage(self, stage: int, total: int, initial: int) -> None:
        if self.enabled and self.progress_bar:
            from tqdm import tqdm
            self._bar = tqdm(total=total, initial=initial, desc=STAGE_NAMES[stage], dynamic_ncols=True,
                             mininterval=1.0)
        self._last_step = initial

    def log(self, stage: int, step: int, scalars: dict[str, float]) -> None:
        if not self.enabled:
            return
        record = {"stage": stage, "step": step, **{k: float(v) for k, v in scalars.items()}}
        self._metrics.write(json.dumps(record) + "\n")
        self._metrics.flush()
        if self._writer is not None:
            for key, value in scalars.items():
                self._writer.add_scalar(f"{STAGE_NAMES[stage]}/{key}", float(value), step)
        if self._bar is not None:
            self._bar.update(step - self._last_step)
            shown = {k: f"{v:.4g}" for k, v in scalars.items() if k in ("loss", "val_loss", "samples_per_s")}
            self._bar.set_postfix(shown, refresh=False)
        else:
            log.info("%s step %d %s", STAGE_NAMES[stage], step,
                     " ".join(f"{k}={v:.4g}" for k, v in scalars.items()))
        self._last_step = step

    def end_stage(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        if self._metrics is not None:
            self._metrics.close()


def read_metrics(path: str | Path) -> list[dict]:
    path = Path(path)
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def plot_loss_curves(run_dir: str | Path) -> Path | None:
    """`loss_curve.png`: encoder pretraining loss (when the run had stage 0), stage-1 reconstruction loss,
    stage-2 training and validation loss."""
    run_dir = Path(run_dir)
    records = read_metrics(run_dir / "metrics.jsonl")
    if not records:
        return None
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s0 = [r for r in records if r["stage"] == 0 and "loss" in r]
    fig, axes = plt.subplots(1, 3 if s0 else 2, figsize=(16 if s0 else 11, 4))
    if s0:
        ax, axes = axes[0], axes[1:]
        ax.plot([r["step"] for r in s0], [r["loss"] for r in s0], label="train MSE")
        val0 = [r for r in records if r["stage"] == 0 and "val_loss" in r]
        ax.plot([r["step"] for r in val0], [r["val_loss"] for r in val0], "o", label="validation MSE")
        ax.set_yscale("log")
        ax.set_title("stage 0: encoder pretraining")
        ax.set_xlabel("step")
    s1 = [r for r in records if r["stage"] == 1 and "loss" in r]
    if s1:
        axes[0].plot([r["step"] for r in s1], [r["loss"] for r in s1], label="loss")
        axes[0].plot([r["step"] for r in s1], [r["recon_l1"] for r in s1], label="recon L1")
        axes[0].set_yscale("log")
    axes[0].set_title("stage 1: residual VQ-VAE")
    axes[0].set_xlabel("step")
    s2 = [r for r in records if r["stage"] == 2 and "loss" in r]
    val = [r for r in records if r["stage"] == 2 and "val_loss" in r]
    if s2:
        axes[1].plot([r["step"] for r in s2], [r["loss"] for r in s2], label="train")
    if val:
        axes[1].plot([r["step"] for r in val], [r["val_loss"] for r in val], "o-", label="validation")
    axes[1].set_title("stage 2: GPT prior + heads")
    axes[1].set_xlabel("step")
    return _save_figure(fig, [ax, *axes] if s0 else axes, run_dir / "loss_curve.png")


def plot_rollout_curve(run_dir: str | Path) -> Path | None:
    """`coverage_vs_time.png`: the rollout evaluations' coverage and success against training minutes."""
    run_dir = Path(run_dir)
    records = [r for r in read_metrics(run_dir / "metrics.jsonl") if "rollout_final_coverage" in r]
    if not records:
        return None
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    minutes = [r["elapsed_min"] for r in records]
    fig, ax = plt.subplots(figsize=(6, 4))
    for key, label in (("rollout_final_coverage", "final coverage"), ("rollout_max_coverage", "max coverage"),
                       ("rollout_success_end", "success at the end")):
        ax.plot(minutes, [r[key] for r in records], "o-", label=label)
    ax.set_xlabel("stage-2 wall-clock minutes")
    ax.set_ylim(0, 1)
    ax.set_title("closed-loop evaluation during training")
    return _save_figure(fig, [ax], run_dir / "coverage_vs_time.png")


def _save_figure(fig, axes, out: Path) -> Path:
    """Grid and legend on every axis that has labelled lines, then the PNG."""
    import matplotlib.pyplot as plt

    for ax in axes:
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
