"""Where things live in a LeRobot v3 dataset directory (docs/lerobot_dataset.md §1): one place for the reader,
the writer and the tools that check for a dataset.

Files are grouped in chunks of at most `CHUNKS_SIZE` files; `{chunk_index}` and `{file_index}` number them.
A dataset's `info.json` carries the data and video templates it was written with; the reader prefers those and
falls back to these for a dataset that omits them.
"""
from __future__ import annotations

from pathlib import Path

VERSION = "v3.0"
CHUNKS_SIZE = 1000
DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
VIDEO_PATH = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
EPISODES_DIR = "meta/episodes"
EPISODES_PATH = EPISODES_DIR + "/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
EPISODES_GLOB = "chunk-*/file-*.parquet"  # below EPISODES_DIR
INFO_PATH = "meta/info.json"


def info_path(root: str | Path) -> Path:
    """`meta/info.json` of the dataset at `root`: it exists once a dataset has been written there."""
    return Path(root) / INFO_PATH


def episode_files(root: str | Path) -> list[Path]:
    """The `meta/episodes` parquet files of the dataset at `root`, in order."""
    return sorted((Path(root) / EPISODES_DIR).glob(EPISODES_GLOB))
