"""vqbet-eval: short PushT rollouts of a checkpoint (its chunk execution is tested in test_model_scheduler.py)."""
from __future__ import annotations

import json

import pytest
from training_fixtures import make_pusht_zarr, tiny_config

from vqbet_ros.model.checkpoint import save_checkpoint
from vqbet_ros.model.policy import VQBeTPolicy
from vqbet_ros.runtime.fast_path import cpu_bf16_support
from vqbet_ros.training import evaluate
from vqbet_ros.training.data import load_training_data


def test_eval_runs_two_short_episodes_and_writes_video_and_results(tmp_path, capsys):
    cfg = tiny_config(make_pusht_zarr(tmp_path), tmp_path / "run")
    data = load_training_data(cfg.data, cfg.model.spec)
    policy = VQBeTPolicy(cfg.model)
    policy.freeze_tokenizer()
    save_checkpoint(tmp_path / "ckpt", cfg.model, policy, data.stats)
    code = evaluate.main(["--checkpoint", str(tmp_path / "ckpt"), "--episodes", "2", "--max-steps", "8",
                          "--video", str(tmp_path / "roll.mp4"), "--output", str(tmp_path / "res.json")])
    assert code == 0
    result = json.loads((tmp_path / "res.json").read_text())
    assert [e["seed"] for e in result["episodes"]] == [100000, 100001]
    assert all(e["steps"] <= 8 and 0 <= e["final_coverage"] <= e["max_coverage"] <= 1 for e in result["episodes"])
    assert 0 <= result["summary"]["final_coverage_mean"] <= 1
    assert (tmp_path / "roll.mp4").stat().st_size > 0
    assert "final coverage (paper metric)" in capsys.readouterr().out


def test_eval_refuses_missing_checkpoint_with_path(tmp_path, capsys):
    assert evaluate.main(["--checkpoint", str(tmp_path / "nope"), "--episodes", "2"]) == 2
    assert "nope" in capsys.readouterr().err


def _tiny_checkpoint(tmp_path):
    cfg = tiny_config(make_pusht_zarr(tmp_path), tmp_path / "run")
    data = load_training_data(cfg.data, cfg.model.spec)
    policy = VQBeTPolicy(cfg.model)
    policy.freeze_tokenizer()
    save_checkpoint(tmp_path / "ckpt", cfg.model, policy, data.stats)
    return tmp_path / "ckpt"


def test_eval_episode_result_is_the_same_alone_and_inside_a_batch(tmp_path):
    """Sampled codes (temperature 1) and contact physics: any dependence on the batch would show."""
    alone, batched = tmp_path / "alone.json", tmp_path / "batched.json"
    checkpoint = _tiny_checkpoint(tmp_path)
    assert evaluate.main(["--checkpoint", str(checkpoint), "--episodes", "1", "--start-seed", "12",
                          "--max-steps", "60", "--output", str(alone)]) == 0
    assert evaluate.main(["--checkpoint", str(checkpoint), "--episodes", "3", "--start-seed", "11",
                          "--max-steps", "60", "--batch", "3", "--output", str(batched)]) == 0
    one = json.loads(alone.read_text())["episodes"][0]
    same = json.loads(batched.read_text())["episodes"][1]
    assert one["seed"] == same["seed"] == 12
    assert one == same


def test_eval_official_protocol_runs_302_steps_without_rendering_the_camera(tmp_path, monkeypatch):
    from gym_pusht.envs.pusht import PushTEnv

    renders = []
    original = PushTEnv._render
    monkeypatch.setattr(PushTEnv, "_render", lambda self, *a, **k: renders.append(1) or original(self, *a, **k))
    out = tmp_path / "res.json"
    assert evaluate.main(["--checkpoint", str(_tiny_checkpoint(tmp_path)), "--episodes", "2",
                          "--output", str(out)]) == 0
    result = json.loads(out.read_text())
    assert [e["steps"] for e in result["episodes"]] == [302, 302]  # no early end, whatever the coverage
    assert result["summary"]["protocol"] == "official" and renders == []


def test_eval_names_a_checkpoint_path_that_is_a_file(tmp_path, capsys):
    (tmp_path / "model.safetensors").write_bytes(b"x")
    assert evaluate.main(["--checkpoint", str(tmp_path / "model.safetensors"), "--episodes", "2"]) == 2
    assert "model.safetensors` is a file, expected a checkpoint directory" in capsys.readouterr().err


def test_eval_through_the_runtime_matches_the_direct_path_with_argmax_codes(tmp_path):
    """`--runtime` feeds the deployment runtime one observation per step and applies its command: with
    deterministic codes, the same episodes as the direct path (up to float32 vs float64 normalisation)."""
    checkpoint = _tiny_checkpoint(tmp_path)
    direct, through = tmp_path / "direct.json", tmp_path / "runtime.json"
    args = ["--checkpoint", str(checkpoint), "--episodes", "2", "--max-steps", "40", "--argmax"]
    assert evaluate.main([*args, "--output", str(direct)]) == 0
    assert evaluate.main([*args, "--runtime", "--output", str(through)]) == 0
    reference = json.loads(direct.read_text())["episodes"]
    result = json.loads(through.read_text())
    assert result["summary"]["inference"]["gate"] == "eager"
    for got, want in zip(result["episodes"], reference):
        assert got["seed"] == want["seed"] and got["steps"] == want["steps"] == 40
        assert got["final_coverage"] == pytest.approx(want["final_coverage"], abs=1e-4)
        assert got["max_coverage"] == pytest.approx(want["max_coverage"], abs=1e-4)


def test_eval_reports_the_parity_gate_verdict_of_the_optimized_path(tmp_path, capsys):
    out = tmp_path / "res.json"
    assert evaluate.main(["--checkpoint", str(_tiny_checkpoint(tmp_path)), "--episodes", "1", "--max-steps", "5",
                          "--autocast", "bf16", "--output", str(out)]) == 0
    inference = json.loads(out.read_text())["summary"]["inference"]
    if cpu_bf16_support() is None:  # bf16 not used: eager fp32, and the reason says so
        assert inference["gate"] == "eager" and "AVX512-BF16" in inference["reason"]
    else:
        assert inference["gate"] == "accepted" and inference["path"] == "autocast bf16"
        assert 0 <= inference["max_difference"] <= 0.02
    assert f"gate {inference['gate']}" in capsys.readouterr().out
