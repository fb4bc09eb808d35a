"""Window index arithmetic and WindowDataset on a tiny 2-episode dataset (expected indices by hand)."""
import numpy as np
import pytest
import torch

from vqbet_ros import constants
from vqbet_ros.data.windows import (
    WindowDataset,
    action_chunks,
    chunk_indices,
    history_indices,
    sequence_indices,
    split_episodes,
    window_indices,
)

# Episode 0 = rows 0..3 (length 4), episode 1 = rows 4..9 (length 6). T = 3, W = 3.
RANGES = [(0, 4), (4, 10)]
T, W = 3, 3
F, P = False, True


def tiny_arrays():
    rows = np.arange(10)
    return {
        constants.STATE: rows[:, None].astype(np.float32),  # state value = its row
        constants.image_key("cam"): np.broadcast_to(rows[:, None, None, None], (10, 3, 2, 2)).astype(np.uint8),
        constants.ACTION: np.stack([rows, 10 * rows], axis=1).astype(np.float32),
    }


def test_history_indices_pad_with_first_frame_of_episode():
    assert history_indices(4, 4, 3).tolist() == [4, 4, 4]
    assert history_indices(5, 4, 3).tolist() == [4, 4, 5]
    assert history_indices(9, 4, 3).tolist() == [7, 8, 9]


def test_chunk_indices_repeat_last_action_and_flag_it():
    idx, pad = chunk_indices(8, 10, 3)
    assert idx.tolist() == [8, 9, 9]
    assert pad.tolist() == [F, F, P]


def test_window_indices_at_episode_end_match_hand_computed():
    obs, act, pad = window_indices(3, 0, 4, T, W)
    assert obs.tolist() == [1, 2, 3]
    assert act.tolist() == [[1, 2, 3], [2, 3, 3], [3, 3, 3]]
    assert pad.tolist() == [[F, F, F], [F, F, P], [F, P, P]]


def test_window_indices_at_episode_start_use_first_frame_chunks():
    obs, act, pad = window_indices(5, 4, 10, T, W)
    assert obs.tolist() == [4, 4, 5]
    assert act.tolist() == [[4, 5, 6], [4, 5, 6], [5, 6, 7]]
    assert not pad.any()


def test_window_indices_refuse_row_outside_episode():
    with pytest.raises(IndexError, match="outside its episode"):
        window_indices(4, 0, 4, T, W)


def test_sequence_indices_mark_context_and_filler_positions():
    obs, act, pad, target = sequence_indices(3, 0, 4, T, W, sequence_length=5)
    assert obs.tolist() == [1, 2, 3, 3, 3]
    assert target.tolist() == [F, F, P, F, F]
    assert act[2].tolist() == [3, 3, 3]
    assert pad.tolist() == [[F, F, F], [F, F, P], [F, P, P], [P] * 3, [P] * 3]


def test_window_dataset_sample_values_at_episode_boundaries():
    ds = WindowDataset(tiny_arrays(), RANGES, n_obs_steps=T, chunk_size=W)
    assert len(ds) == 10
    first_of_ep1 = ds[4]
    assert first_of_ep1[constants.STATE][:, 0].tolist() == [4, 4, 4]
    assert first_of_ep1[constants.image_key("cam")].shape == (3, 3, 2, 2)
    assert first_of_ep1[constants.image_key("cam")][:, 0, 0, 0].tolist() == [4, 4, 4]
    last = ds[9]
    assert last[constants.ACTION].shape == (T, W, 2)
    assert last[constants.ACTION][..., 0].tolist() == [[7, 8, 9], [8, 9, 9], [9, 9, 9]]
    assert last[constants.ACTION][..., 1].tolist() == [[70, 80, 90], [80, 90, 90], [90, 90, 90]]
    assert last[constants.ACTION_IS_PAD].tolist() == [[F, F, F], [F, F, P], [F, P, P]]


def test_window_dataset_batch_matches_scalar_index_functions():
    ds = WindowDataset(tiny_arrays(), RANGES, n_obs_steps=T, chunk_size=W)
    batch = ds.get_batch(np.arange(len(ds)))
    for i, t in enumerate(range(10)):
        start, end = RANGES[0] if t < 4 else RANGES[1]
        obs, act, pad = window_indices(t, start, end, T, W)
        assert batch[constants.STATE][i, :, 0].tolist() == obs.tolist()
        assert batch[constants.ACTION][i, :, :, 0].tolist() == act.tolist()
        assert batch[constants.ACTION_IS_PAD][i].tolist() == pad.tolist()


def test_window_dataset_sequence_mode_targets_each_frame_once():
    ds = WindowDataset(tiny_arrays(), RANGES, n_obs_steps=T, chunk_size=W, sequence_length=4)
    assert len(ds) == 5  # stride L-T+1 = 2: episode 0 t0 = 0, 2; episode 1 t0 = 4, 6, 8
    batch = ds.get_batch(np.arange(len(ds)))
    targets = batch[constants.STATE][..., 0][batch["target_mask"]]
    assert sorted(targets.tolist()) == list(range(10))
    assert batch[constants.STATE][0, :, 0].tolist() == [0, 0, 0, 1]
    assert batch[constants.STATE][4, :, 0].tolist() == [6, 7, 8, 9]
    assert batch[constants.ACTION_IS_PAD][4].tolist() == [[F, F, F], [F, F, F], [F, F, P], [F, P, P]]


def test_sequence_windows_ending_at_targets_equal_window_mode_samples():
    windows = WindowDataset(tiny_arrays(), RANGES, n_obs_steps=T, chunk_size=W)
    seqs = WindowDataset(tiny_arrays(), RANGES, n_obs_steps=T, chunk_size=W, sequence_length=5)
    seq = seqs.get_batch(np.arange(len(seqs)))
    seen = []
    for b in range(len(seqs)):
        for j in np.nonzero(seq["target_mask"][b])[0]:
            frame = int(seq[constants.STATE][b, j, 0])
            expected = windows[frame]
            for key in (constants.STATE, constants.ACTION, constants.ACTION_IS_PAD):
                np.testing.assert_array_equal(seq[key][b, j - T + 1:j + 1], expected[key])
            seen.append(frame)
    assert sorted(seen) == list(range(10))


def test_window_dataset_only_draws_requested_episodes():
    ds = WindowDataset(tiny_arrays(), RANGES, n_obs_steps=T, chunk_size=W, episodes=[1])
    assert len(ds) == 6
    assert ds[0][constants.STATE][:, 0].tolist() == [4, 4, 4]


def test_window_dataset_collates_with_dataloader():
    ds = WindowDataset(tiny_arrays(), RANGES, n_obs_steps=T, chunk_size=W)
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=4)))
    assert batch[constants.ACTION].shape == (4, T, W, 2)
    assert batch[constants.image_key("cam")].dtype == torch.uint8
    assert batch[constants.ACTION_IS_PAD].dtype == torch.bool


def test_window_dataset_rejects_mismatched_lengths():
    arrays = tiny_arrays()
    arrays[constants.STATE] = arrays[constants.STATE][:9]
    with pytest.raises(ValueError, match="observation.state` has 9 rows"):
        WindowDataset(arrays, RANGES, n_obs_steps=T, chunk_size=W)


def test_action_chunks_drop_or_pad_episode_ends():
    actions = tiny_arrays()[constants.ACTION]
    inside = action_chunks(actions, RANGES, 3)
    assert inside.shape == (2 + 4, 3, 2)
    assert inside[:, :, 0].tolist()[:2] == [[0, 1, 2], [1, 2, 3]]
    padded = action_chunks(actions, RANGES, 3, include_padded=True)
    assert padded.shape == (10, 3, 2)
    assert padded[3, :, 0].tolist() == [3, 3, 3]


def test_split_episodes_is_reproducible_and_disjoint():
    train, val = split_episodes(20, val_fraction=0.2, seed=3)
    assert (train, val) == split_episodes(20, val_fraction=0.2, seed=3)
    assert len(val) == 4 and not set(train) & set(val)
    assert sorted(train + val) == list(range(20))
    assert split_episodes(20, 0.2, seed=4) != (train, val)


def test_window_dataset_serves_whole_batches_to_a_batch_sampler():
    ds = WindowDataset(tiny_arrays(), RANGES, n_obs_steps=T, chunk_size=W)
    sampler = torch.utils.data.BatchSampler(torch.utils.data.SequentialSampler(ds), 4, drop_last=True)
    loader = torch.utils.data.DataLoader(ds, sampler=sampler, batch_size=None)
    batches = list(loader)
    assert len(batches) == 2
    assert isinstance(batches[1][constants.ACTION], torch.Tensor)
    assert batches[1][constants.STATE][:, -1, 0].tolist() == [4, 5, 6, 7]
