"""Frame sharing is exact: sequence samples cut into windows give the windows a window sampler draws."""
from __future__ import annotations

import numpy as np
import torch
from training_fixtures import make_pusht_zarr, tiny_config

from vqbet_ros.data.windows import WindowDataset
from vqbet_ros.model.policy import VQBeTPolicy
from vqbet_ros.training.data import load_training_data
from vqbet_ros.training.objective import PriorObjective, cut_windows


def test_cut_windows_returns_every_window_in_order():
    x = torch.arange(2 * 6).view(2, 6, 1)  # (B, P, 1)
    w = cut_windows(x, 3)  # (B * 4, 3, 1)
    assert w.shape == (8, 3, 1)
    assert w[0, :, 0].tolist() == [0, 1, 2] and w[3, :, 0].tolist() == [3, 4, 5] and w[4, :, 0].tolist() == [6, 7, 8]


def _tensors(batch):
    obs = {k: torch.from_numpy(v) for k, v in batch.items() if k.startswith("observation.")}
    return obs, torch.from_numpy(batch["action"]), torch.from_numpy(batch["action_is_pad"])


def test_sequence_loss_equals_window_loss_on_the_same_targets(tmp_path):
    cfg = tiny_config(make_pusht_zarr(tmp_path), tmp_path / "run")
    spec = cfg.model.spec
    data = load_training_data(cfg.data, spec)
    torch.manual_seed(0)
    policy = VQBeTPolicy(cfg.model)
    policy.freeze_tokenizer()
    policy.eval()
    T, L = spec.n_obs_steps, 10
    seq = WindowDataset(data.arrays, data.episode_ranges, T, spec.chunk_size, episodes=[0], sequence_length=L)
    win = WindowDataset(data.arrays, data.episode_ranges, T, spec.chunk_size, episodes=[0])
    # Sequence sample 0 targets rows 0..L-T of episode 0; window sample t is the window of row t.
    targets = np.arange(L - T + 1)
    for mode in ("last", "all"):
        objective = PriorObjective(policy, T, mode)
        torch.manual_seed(1)
        from_seq = objective(*_tensors(seq.get_batch([0])))
        torch.manual_seed(1)
        from_win = objective(*_tensors(win.get_batch(targets)))
        if mode == "last":  # identical windows, identical rows, identical code samples
            for key in ("loss", "primary_code_loss", "secondary_code_loss", "offset_l1"):
                torch.testing.assert_close(from_seq[key], from_win[key])
        assert from_seq["windows"] == from_win["windows"] == len(targets)
