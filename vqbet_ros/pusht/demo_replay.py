"""The human PushT demonstrations of Diffusion Policy (`pusht_cchi_v7_replay.zarr`), read for replay. ROS-free.

Layout (a Diffusion Policy replay buffer, read through `data/zarr_replay.py`): `meta/episode_ends` int64 (E,)
end-exclusive row of each episode; `data/state` (N, 5) [agent x, y, block x, y, angle]; `data/action` (N, 2) absolute agent target in pixels,
recorded at 10 Hz by mouse teleop. Row t's action was applied after row t's state was observed, so
resetting PushT to an episode's first state and stepping its actions replays the demonstration.
The images (`data/img`) are not read: replay renders them again.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vqbet_ros.data.zarr_replay import episode_ranges_from_ends, open_replay, read_rows


@dataclass
class DemoEpisode:
    """One human demonstration."""

    index: int
    states: np.ndarray  # (T, 5) [agent x, y, block x, y, angle] before each action
    actions: np.ndarray  # (T, 2) absolute agent targets (pixels)

    @property
    def initial_state(self) -> np.ndarray:
        return self.states[0]

    def __len__(self) -> int:
        return len(self.actions)


class PushTDemos:
    """Random access to the episodes of a Diffusion Policy PushT zarr."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        root = open_replay(self.path)
        self._state = root["data/state"]
        self._action = root["data/action"]
        self.episode_ranges = episode_ranges_from_ends(root["meta/episode_ends"][:])

    @property
    def num_episodes(self) -> int:
        return len(self.episode_ranges)

    def episode(self, index: int, max_steps: int | None = None) -> DemoEpisode:
        """Episode `index` (its first `max_steps` steps if given)."""
        if not 0 <= index < self.num_episodes:
            raise IndexError(f"episode {index} does not exist; `{self.path}` has episodes 0..{self.num_episodes - 1}")
        start, end = self.episode_ranges[index]
        if max_steps is not None:
            end = min(end, start + max_steps)
        return DemoEpisode(
            index=index,
            states=read_rows(self._state, start, end, self.path).astype(float),
            actions=read_rows(self._action, start, end, self.path).astype(float),
        )
