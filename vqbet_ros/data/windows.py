"""Training windows: observation history and action chunks, with VQ-BeT's padding rules.

Dimension letters: N frames in the dataset, T observation history (`n_obs_steps`), W chunk length, A action
dim, L sequence length (sequence mode), B batch. Indices are global rows; an episode is the end-exclusive
row range [ep_start, ep_end).

Rules (docs/vqbet.md §3 "short history at episode start", §10.10, §10.12):
- The history for frame t is the T frames ending at t; rows before the episode start repeat the episode's
  FIRST frame (what the runtime does at reset: the history is pre-filled with copies of the first frame).
- Each history position p gets the chunk a[p .. p+W-1] (the obs token at p targets the chunk starting at p,
  §10.10); a padded position uses its clamped row, i.e. the first frame and the chunk a[ep_start ..].
- Chunk steps past the episode end repeat the episode's LAST action and are flagged in `action_is_pad` so the
  loss skips them. Deviation: LeRobot trains on those repeated actions (§10.12); the official slicer drops
  the last chunks of each episode instead (§10.15). Masking keeps the end-of-episode frames as inputs
  without teaching the policy a fake "hold still" chunk.

Sequence mode (for training efficiency): one sample is L consecutive positions starting T-1 rows before a
first target row t0, so each frame is encoded once and shared by the T-step windows that contain it.
Positions k >= T-1 inside the episode are targets (`target_mask`): the T positions ending at a target
(cut out, or seen through a banded causal mask) are exactly the window-mode sample of that frame, pads
included. The first T-1 positions are context (real or first-frame rows, chunks unflagged, so the windows
ending at the first targets match window mode). Positions past the episode end are filler: clamped to the
last frame, their whole chunk flagged in `action_is_pad`. A window ending at a filler position is not a
training window: consumers that train every position of a window must drop windows whose last position has
`target_mask` False (training only the last position of each window needs nothing more). Consecutive samples
of an episode advance t0 by L-T+1, so each frame is a target exactly once per epoch.
"""
from __future__ import annotations

import numpy as np
import torch.utils.data

from vqbet_ros import constants


# ------------------------------------------------------------------------------------ index arithmetic
def history_indices(t: int, ep_start: int, n_obs_steps: int) -> np.ndarray:
    """Rows of the T-frame history ending at row t, rows before `ep_start` clamped to it. (T,) int64."""
    return np.maximum(np.arange(t - n_obs_steps + 1, t + 1, dtype=np.int64), ep_start)


def chunk_indices(start: int, ep_end: int, chunk_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows of the W-step action chunk starting at row `start`, clamped to the episode's last row.

    Returns (indices (W,) int64, is_pad (W,) bool) where is_pad marks steps at or past `ep_end`.
    """
    steps = np.arange(start, start + chunk_size, dtype=np.int64)
    return np.minimum(steps, ep_end - 1), steps >= ep_end


def window_indices(
    t: int, ep_start: int, ep_end: int, n_obs_steps: int, chunk_size: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Indices of the training window of frame t.

    Returns obs (T,), action (T, W) and action_is_pad (T, W): one chunk per history position.
    """
    if not ep_start <= t < ep_end:
        raise IndexError(f"row {t} is outside its episode [{ep_start}, {ep_end})")
    obs = history_indices(t, ep_start, n_obs_steps)
    steps = obs[:, None] + np.arange(chunk_size, dtype=np.int64)[None, :]  # (T, W)
    return obs, np.minimum(steps, ep_end - 1), steps >= ep_end


def sequence_indices(
    t0: int, ep_start: int, ep_end: int, n_obs_steps: int, chunk_size: int, sequence_length: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Indices of a sequence-mode sample whose first target row is t0.

    Positions k = 0..L-1 stand for rows t0 - (T-1) + k, clamped into the episode (first frame before it,
    last frame after it). Returns obs (L,), action (L, W), action_is_pad (L, W) and target_mask (L,), where
    target_mask is True for positions k >= T-1 that lie inside the episode; action_is_pad is True for chunk
    steps past the episode end and for every step of a filler position (row past the episode end).
    """
    if not ep_start <= t0 < ep_end:
        raise IndexError(f"row {t0} is outside its episode [{ep_start}, {ep_end})")
    if sequence_length < n_obs_steps:
        raise ValueError(f"sequence_length ({sequence_length}) must be >= n_obs_steps ({n_obs_steps})")
    rows = np.arange(t0 - n_obs_steps + 1, t0 - n_obs_steps + 1 + sequence_length, dtype=np.int64)  # (L,)
    obs = np.clip(rows, ep_start, ep_end - 1)
    filler = rows >= ep_end
    target = (np.arange(sequence_length) >= n_obs_steps - 1) & ~filler
    steps = obs[:, None] + np.arange(chunk_size, dtype=np.int64)[None, :]  # (L, W)
    is_pad = (steps >= ep_end) | filler[:, None]
    return obs, np.minimum(steps, ep_end - 1), is_pad, target


def action_chunks(
    actions: np.ndarray,
    episode_ranges: list[tuple[int, int]],
    chunk_size: int,
    episodes: list[int] | None = None,
    include_padded: bool = False,
) -> np.ndarray:
    """Every W-step action chunk of the chosen episodes, (M, W, A), for training the tokenizer (stage 1).

    By default only chunks that fit inside their episode (the official stage-1 data, docs/vqbet.md §10.15); with
    `include_padded`, also the last W-1 starts of each episode, padded by repeating the last action.
    """
    chosen = range(len(episode_ranges)) if episodes is None else episodes
    index_parts = []
    for e in chosen:
        start, stop = episode_ranges[e]
        last_start = stop if include_padded else stop - chunk_size + 1
        starts = np.arange(start, max(last_start, start), dtype=np.int64)
        steps = starts[:, None] + np.arange(chunk_size, dtype=np.int64)[None, :]
        index_parts.append(np.minimum(steps, stop - 1))
    if not index_parts:
        return np.zeros((0, chunk_size, actions.shape[-1]), actions.dtype)
    return actions[np.concatenate(index_parts)]


def split_episodes(
    num_episodes: int, val_fraction: float = 0.1, seed: int = 0
) -> tuple[list[int], list[int]]:
    """Random train/val split of episode positions 0..E-1, reproducible by seed; both lists sorted.

    At least one episode stays in training; a positive fraction with E >= 2 gives at least one val episode.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"`val_fraction`: must be in [0, 1), got {val_fraction}")
    if num_episodes < 1:
        raise ValueError(f"cannot split {num_episodes} episodes")
    n_val = int(round(val_fraction * num_episodes))
    if val_fraction > 0 and num_episodes >= 2:
        n_val = max(n_val, 1)
    n_val = min(n_val, num_episodes - 1)
    order = np.random.default_rng(seed).permutation(num_episodes)
    return sorted(order[n_val:].tolist()), sorted(order[:n_val].tolist())


# -------------------------------------------------------------------------------------------- dataset
class WindowDataset(torch.utils.data.Dataset):
    """Training samples cut from in-memory arrays (decoded once into RAM).

    Args:
        arrays: dataset key -> (N, ...) array over all rows; must include `action_key`. Every other key is an
            observation (state and low-dim float arrays, per-camera uint8 (N, 3, H, W) frames).
        episode_ranges: (ep_start, ep_end) global rows of every episode, end-exclusive.
        n_obs_steps: T, the observation history.
        chunk_size: W, the action chunk length.
        episodes: positions into `episode_ranges` to draw samples from (e.g. the train split); None = all.
        sequence_length: None for window mode (one sample per frame, T positions); L >= T for sequence mode.
        action_key: key of the actions in `arrays`.

    A sample is {obs key: (T or L, ...), "action": (T or L, W, A), "action_is_pad": (T or L, W) bool}, plus
    "target_mask": (L,) bool in sequence mode. Arrays keep their dtype (images stay uint8); the default
    collate of a DataLoader turns them into tensors. `get_batch(ids)` gathers a whole batch with one fancy
    index per key, which is much faster than collating single samples.
    """

    def __init__(
        self,
        arrays: dict[str, np.ndarray],
        episode_ranges: list[tuple[int, int]],
        n_obs_steps: int,
        chunk_size: int,
        episodes: list[int] | None = None,
        sequence_length: int | None = None,
        action_key: str = constants.ACTION,
    ):
        if action_key not in arrays:
            raise KeyError(f"`{action_key}` is not among the arrays {sorted(arrays)}")
        if n_obs_steps < 1 or chunk_size < 1:
            raise ValueError(f"`n_obs_steps` and `chunk_size` must be >= 1, got {n_obs_steps} and {chunk_size}")
        if sequence_length is not None and sequence_length < n_obs_steps:
            raise ValueError(f"`sequence_length` ({sequence_length}) must be >= n_obs_steps ({n_obs_steps})")
        n = len(arrays[action_key])
        for key, array in arrays.items():
            if len(array) != n:
                raise ValueError(f"`{key}` has {len(array)} rows but `{action_key}` has {n}; all must match")
        for start, stop in episode_ranges:
            if not 0 <= start < stop <= n:
                raise ValueError(f"episode range ({start}, {stop}) is empty or outside the {n} rows")
        self.arrays = arrays
        self.action_key = action_key
        self.obs_keys = [k for k in arrays if k != action_key]
        self.n_obs_steps = n_obs_steps
        self.chunk_size = chunk_size
        self.sequence_length = sequence_length
        self.episodes = list(range(len(episode_ranges))) if episodes is None else list(episodes)
        self.episode_ranges = [episode_ranges[e] for e in self.episodes]

        # One entry per sample: (first target row, episode start, episode end).
        stride = 1 if sequence_length is None else sequence_length - n_obs_steps + 1
        rows, starts, ends = [], [], []
        for start, stop in self.episode_ranges:
            t = np.arange(start, stop, stride, dtype=np.int64)
            rows.append(t)
            starts.append(np.full_like(t, start))
            ends.append(np.full_like(t, stop))
        cat = (lambda p: np.concatenate(p)) if rows else (lambda p: np.zeros(0, np.int64))
        self._rows, self._starts, self._ends = cat(rows), cat(starts), cat(ends)

    def __len__(self) -> int:
        return len(self._rows)

    def sample_indices(self, ids: np.ndarray) -> dict[str, np.ndarray]:
        """Global row indices of samples `ids` (B,): obs (B, T|L), action (B, T|L, W), action_is_pad (and
        target_mask in sequence mode). Vectorised form of `window_indices` / `sequence_indices`."""
        ids = np.asarray(ids, dtype=np.int64)
        t, start, end = self._rows[ids], self._starts[ids], self._ends[ids]
        T, W = self.n_obs_steps, self.chunk_size
        L = T if self.sequence_length is None else self.sequence_length
        rows = t[:, None] + np.arange(-T + 1, L - T + 1, dtype=np.int64)[None, :]  # (B, L)
        obs = np.clip(rows, start[:, None], end[:, None] - 1)
        steps = obs[:, :, None] + np.arange(W, dtype=np.int64)[None, None, :]  # (B, L, W)
        is_pad = steps >= end[:, None, None]
        out = {"obs": obs, "action": np.minimum(steps, end[:, None, None] - 1)}
        if self.sequence_length is not None:
            filler = rows >= end[:, None]  # (B, L)
            target = (np.arange(L) >= T - 1)[None, :] & ~filler
            is_pad = is_pad | filler[:, :, None]
            out["target_mask"] = target
        out[constants.ACTION_IS_PAD] = is_pad
        return out

    def get_batch(self, ids) -> dict[str, np.ndarray]:
        """Samples `ids` stacked: {obs key: (B, T|L, ...), "action": (B, T|L, W, A), "action_is_pad": ...}."""
        idx = self.sample_indices(ids)
        batch = {key: self.arrays[key][idx["obs"]] for key in self.obs_keys}
        batch[constants.ACTION] = self.arrays[self.action_key][idx["action"]]
        batch[constants.ACTION_IS_PAD] = idx[constants.ACTION_IS_PAD]
        if "target_mask" in idx:
            batch["target_mask"] = idx["target_mask"]
        return batch

    def __getitem__(self, i) -> dict[str, np.ndarray]:
        """One sample, or a whole batch when `i` is a list/array of ids. The batch form lets a DataLoader with
        `sampler=BatchSampler(RandomSampler(ds), B, drop_last=True), batch_size=None` gather each batch in one
        vectorised call (its default conversion still turns the arrays into tensors)."""
        if isinstance(i, (list, tuple, np.ndarray)):
            ids = np.asarray(i, dtype=np.int64)
            if ids.size and (ids.min() < 0 or ids.max() >= len(self)):
                raise IndexError(f"sample ids out of range for {len(self)} samples")
            return self.get_batch(ids)
        if not -len(self) <= i < len(self):
            raise IndexError(f"sample {i} is out of range for {len(self)} samples")
        return {k: v[0] for k, v in self.get_batch(np.array([i % len(self)])).items()}
