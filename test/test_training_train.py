"""vqbet-train end to end on a tiny dataset: outputs, stage selection, resume, config errors."""
from __future__ import annotations

import json

import pytest
import torch
from training_fixtures import make_pusht_zarr, tiny_config

from vqbet_ros.config_io import ConfigError, save_yaml
from vqbet_ros.model.checkpoint import load_checkpoint
from vqbet_ros.training import train
from vqbet_ros.training.trainer import STATE_FILE


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return make_pusht_zarr(tmp_path_factory.mktemp("data"))


def test_train_writes_loadable_final_checkpoint_and_artifacts(dataset, tmp_path):
    cfg = tiny_config(dataset, tmp_path / "run")
    save_yaml(cfg, tmp_path / "cfg.yaml")
    assert train.main(["--config", str(tmp_path / "cfg.yaml"), "--no-progress"]) == 0
    run = tmp_path / "run"
    loaded = load_checkpoint(run / "final")
    assert loaded.policy.tokenizer.frozen
    assert loaded.metadata["stage2_steps"] == 4
    assert (run / "loss_curve.png").stat().st_size > 0
    assert any((run / "tensorboard").iterdir())
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert {r["stage"] for r in records} == {1, 2}
    assert any("val_loss" in r for r in records) and all(r.get("samples_per_s", 1) > 0 for r in records)


def test_train_stage2_from_stage1_checkpoint_keeps_its_tokenizer_and_stats(dataset, tmp_path):
    cfg = tiny_config(dataset, tmp_path / "tok")
    train.run(cfg, stage="1", progress_bar=False)
    tok = load_checkpoint(tmp_path / "tok" / "final")
    cfg2 = tiny_config(dataset, tmp_path / "prior")
    policy, _, summary = train.run(cfg2, stage="2", init=str(tmp_path / "tok" / "final"), progress_bar=False)
    for key, value in tok.policy.tokenizer.state_dict().items():
        assert torch.equal(policy.tokenizer.state_dict()[key], value), key
    final = load_checkpoint(tmp_path / "prior" / "final")
    assert final.stats["action"]["min"].tolist() == tok.stats["action"]["min"].tolist()
    assert summary["stage1_time_s"] < 1.0  # stage 1 was not run again


def test_train_resume_continues_from_saved_step_and_optimizer_state(dataset, tmp_path):
    straight, _, _ = train.run(tiny_config(dataset, tmp_path / "a"), progress_bar=False)
    # Same run interrupted after stage-2 step 2 (its checkpoint), then resumed to step 4.
    train.run(tiny_config(dataset, tmp_path / "b", steps=2), progress_bar=False)
    saved = torch.load(tmp_path / "b" / "checkpoints" / "stage2_0000002" / STATE_FILE, weights_only=True)
    assert saved["step"] == 2 and saved["prior_optimizers"]["main"]["state"]
    resumed, _, summary = train.run(tiny_config(dataset, tmp_path / "b"), resume=True, progress_bar=False)
    assert summary["stage2_steps"] == 4
    for key, value in straight.state_dict().items():
        assert torch.allclose(resumed.state_dict()[key], value, atol=1e-6), key


def test_train_resume_refuses_other_architecture_naming_field(dataset, tmp_path):
    train.run(tiny_config(dataset, tmp_path / "c", steps=2), progress_bar=False)
    cfg = tiny_config(dataset, tmp_path / "c")
    cfg.model.prior.n_embd = 32
    with pytest.raises(ConfigError, match=r"model\.prior\.n_embd"):
        train.run(cfg, resume=True, progress_bar=False)


def test_train_cli_reports_bad_override_by_key_path(dataset, tmp_path, capsys):
    save_yaml(tiny_config(dataset, tmp_path / "d"), tmp_path / "cfg.yaml")
    assert train.main(["--config", str(tmp_path / "cfg.yaml"), "stage2.lr=fast"]) == 2
    assert "`stage2.lr`" in capsys.readouterr().err
    assert train.main(["--config", str(tmp_path / "cfg.yaml"), "stage2.sequence_length=2"]) == 2
    assert "sequence_length" in capsys.readouterr().err
    assert train.main(["--config", str(tmp_path / "cfg.yaml"), "stage3.steps=1"]) == 2
    assert "stage3" in capsys.readouterr().err


def test_train_reads_lerobot_v3_dataset_like_the_zarr_it_came_from(dataset, tmp_path):
    from vqbet_ros.data.convert_zarr import main as convert
    from vqbet_ros.training.data import load_training_data

    assert convert([str(dataset), str(tmp_path / "v3"), "--no-video"]) == 0
    cfg_zarr = tiny_config(dataset, tmp_path / "z")
    cfg_v3 = tiny_config(tmp_path / "v3", tmp_path / "v")
    from_zarr = load_training_data(cfg_zarr.data, cfg_zarr.model.spec)
    from_v3 = load_training_data(cfg_v3.data, cfg_v3.model.spec)
    assert from_v3.episode_ranges == from_zarr.episode_ranges
    for key, array in from_zarr.arrays.items():
        assert torch.allclose(torch.from_numpy(from_v3.arrays[key]), torch.from_numpy(array)), key
    _, _, summary = train.run(cfg_v3, progress_bar=False)
    assert summary["stage2_steps"] == 4


def test_train_with_weight_average_saves_the_average_and_resumes_exactly(dataset, tmp_path):
    straight, _, _ = train.run(tiny_config(dataset, tmp_path / "a", ema_decay=0.5), progress_bar=False)
    final = load_checkpoint(tmp_path / "a" / "final").policy.state_dict()
    live = straight.state_dict()
    changed = [k for k in live if live[k].is_floating_point() and not torch.equal(final[k], live[k])]
    assert changed, "the final checkpoint should hold the averaged weights, not the live ones"
    train.run(tiny_config(dataset, tmp_path / "b", steps=2, ema_decay=0.5), progress_bar=False)
    resumed, _, _ = train.run(tiny_config(dataset, tmp_path / "b", ema_decay=0.5), resume=True, progress_bar=False)
    for key, value in live.items():
        assert torch.allclose(resumed.state_dict()[key], value, atol=1e-6), key
    resumed_final = load_checkpoint(tmp_path / "b" / "final").policy.state_dict()
    for key, value in final.items():
        assert torch.allclose(resumed_final[key], value, atol=1e-6), key


def test_train_rollout_evaluation_logs_task_scores_and_keeps_checkpoints(dataset, tmp_path):
    pytest.importorskip("gym_pusht")
    cfg = tiny_config(dataset, tmp_path / "r", steps=3)
    cfg.rollout.every_min = 1e-9  # after every step
    cfg.rollout.episodes = 2
    train.run(cfg, progress_bar=False)
    run = tmp_path / "r"
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    scored = [r for r in records if "rollout_final_coverage" in r]
    assert len(scored) >= 2 and all(0.0 <= r["rollout_final_coverage"] <= 1.0 for r in scored)
    assert sorted(r["elapsed_min"] for r in scored) == [r["elapsed_min"] for r in scored]
    assert (run / "coverage_vs_time.png").stat().st_size > 0
    kept = sorted(p.name for p in (run / "evaluated").iterdir())
    assert kept and load_checkpoint(run / "evaluated" / kept[-1]).metadata["step"] == 3


@pytest.mark.parametrize("field", ["stage1.lr", "stage2.lr"])
def test_train_stops_when_it_diverges_without_writing_a_checkpoint_after_it(dataset, tmp_path, capsys, field):
    """An absurd learning rate makes the loss (stage 1) or the code logits (stage 2) NaN within a few steps,
    between progress lines (every 5 steps) and checkpoints (every 3): the run must say so and save nothing."""
    cfg = tiny_config(dataset, tmp_path / "run", steps=8)
    cfg.stage1.steps, cfg.log_every, cfg.checkpoint_every = 8, 5, 3
    save_yaml(cfg, tmp_path / "cfg.yaml")
    assert train.main(["--config", str(tmp_path / "cfg.yaml"), "--no-progress", f"{field}=1e30"]) == 2
    err = capsys.readouterr().err
    assert f"vqbet-train: error: stage {field[5]}: " in err and "NaN or inf" in err and "at step" in err
    assert "no checkpoint was written after that step" in err and f"Lower {field}" in err
    assert not (tmp_path / "run" / "final").exists()
    saved = sorted((tmp_path / "run" / "checkpoints").glob("stage*"))
    # Stage 1 diverges before its first checkpoint; in stage 2 only the sound stage 1's checkpoints remain.
    assert [d.name for d in saved] == ([] if field == "stage1.lr" else ["stage1_0000006", "stage2_0000000"])
    for directory in saved:
        load_checkpoint(directory)  # finite, or it would be refused


def test_train_names_episode_frame_and_feature_of_a_nan_in_the_data(dataset, tmp_path, capsys):
    import shutil

    import numpy as np
    import zarr

    path = tmp_path / "nan.zarr"
    shutil.copytree(dataset, path)
    action = zarr.open_group(str(path), mode="r+")["data/action"]
    action[2 * 24 + 5, 1] = np.nan  # episode 2, frame 5 (episodes of 24 frames)
    save_yaml(tiny_config(path, tmp_path / "run"), tmp_path / "cfg.yaml")
    assert train.main(["--config", str(tmp_path / "cfg.yaml"), "--no-progress"]) == 2
    assert "feature `action` is not finite at episode 2, frame 5" in capsys.readouterr().err
    assert not (tmp_path / "run" / "final").exists()


def test_train_names_a_damaged_info_json(dataset, tmp_path, capsys):
    from vqbet_ros.data.convert_zarr import main as convert

    assert convert([str(dataset), str(tmp_path / "v3"), "--no-video"]) == 0
    (tmp_path / "v3" / "meta" / "info.json").write_text('{"fps": 10, "features": ')
    save_yaml(tiny_config(tmp_path / "v3", tmp_path / "run"), tmp_path / "cfg.yaml")
    assert train.main(["--config", str(tmp_path / "cfg.yaml"), "--no-progress"]) == 2
    assert f"`{tmp_path / 'v3' / 'meta' / 'info.json'}` could not be read as JSON" in capsys.readouterr().err


def test_train_names_a_checkpoint_or_output_path_that_is_a_file(dataset, tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    save_yaml(tiny_config(dataset, tmp_path / "run"), tmp_path / "cfg.yaml")
    argv = ["--config", str(tmp_path / "cfg.yaml"), "--no-progress"]
    assert train.main(argv + ["--stage", "2", "--init", str(tmp_path / "file")]) == 2
    assert f"`{tmp_path / 'file'}` is a file, expected a checkpoint directory" in capsys.readouterr().err
    assert train.main(argv + [f"output_dir={tmp_path / 'file'}"]) == 2
    assert f"`{tmp_path / 'file'}` is a file, expected a run directory" in capsys.readouterr().err


def test_train_computes_with_subnormal_floats_flushed_to_zero(dataset, tmp_path):
    """Subnormal weights (decayed towards zero) made a CPU run ~5x slower; training flushes them (train.run)."""
    torch.set_flush_denormal(False)
    subnormal = torch.tensor([1e-39], dtype=torch.float32)
    assert float(subnormal * 1.0) != 0.0
    cfg = tiny_config(dataset, tmp_path / "run")
    save_yaml(cfg, tmp_path / "cfg.yaml")
    assert train.main(["--config", str(tmp_path / "cfg.yaml"), "--no-progress"]) == 0
    assert float(subnormal * 1.0) == 0.0
