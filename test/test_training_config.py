"""TrainConfig: shipped YAML files load, and wrong values are refused naming the key path."""
from __future__ import annotations

from pathlib import Path

import pytest

from vqbet_ros.config_io import ConfigError, load_yaml
from vqbet_ros.training import schedules
from vqbet_ros.training.config import TrainConfig

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "config").glob("train_*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_shipped_train_config_loads(path):
    cfg = load_yaml(TrainConfig, path)
    assert cfg.model.spec.action_dim >= 1


@pytest.mark.parametrize("override, field", [
    ("stage2.loss_positions=middle", "stage2.loss_positions"),
    ("stage2.freeze_fraction=0", "stage2.freeze_fraction"),
    ("stage1.batch_size=0", "stage1"),
    ("data.val_fraction=1.5", "data.val_fraction"),
    ("model.prior.n_head=7", "model.prior"),
    ("device=tpu", "device"),
])
def test_train_config_override_error_names_field(override, field):
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        load_yaml(TrainConfig, CONFIGS[0], [override])


@pytest.mark.parametrize("override, field", [
    ("stage1.lr=.inf", "stage1.lr"),
    ("stage1.weight_decay=-1", "stage1.weight_decay"),
    ("stage2.lr=inf", "stage2.lr"),
    ("stage2.time_limit_min=.nan", "stage2.time_limit_min"),
    ("stage2.grad_clip=nan", "stage2.grad_clip"),
    ("stage2.weight_decay=.nan", "stage2.weight_decay"),
    ("stage2.other_weight_decay=-.inf", "stage2.other_weight_decay"),
    ("stage2.betas=[0.9, 1.5]", "stage2.betas[1]"),
])
def test_train_config_refuses_non_finite_or_out_of_range_numbers_naming_field(override, field):
    with pytest.raises(ConfigError, match=field.replace(".", r"\.").replace("[", r"\[") + "`: must be a finite"):
        load_yaml(TrainConfig, CONFIGS[0], [override])


def test_lr_schedule_warms_up_then_follows_cosine_to_floor():
    assert schedules.lr_multiplier(0, 0.0, 10, "cosine", 0.1) == pytest.approx(0.1)
    assert schedules.lr_multiplier(50, 0.5, 10, "cosine", 0.1) == pytest.approx(0.55)
    assert schedules.lr_multiplier(99, 1.0, 10, "cosine", 0.1) == pytest.approx(0.1)
    assert schedules.lr_multiplier(99, 1.0, 0, "constant", 0.0) == 1.0


def test_progress_follows_time_budget_when_set_and_freeze_at_fraction():
    assert schedules.progress(10, 100) == 0.1
    assert schedules.progress(10, 100, elapsed_s=30, time_limit_s=60) == 0.5
    assert schedules.prior_frozen(0.5, 0.5) and not schedules.prior_frozen(0.49, 0.5)
    assert not schedules.prior_frozen(1.0, 1.0)
