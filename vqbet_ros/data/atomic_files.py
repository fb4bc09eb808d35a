"""Crash-safe file writes: temp file, fsync, rename, fsync of the directory.

A reader (or a process opening the file after a crash) sees either the old file or the complete new one, never a
partial write. This is the building block of the LeRobot writer's commit protocol (`data/lerobot_writer.py`).
"""
from __future__ import annotations

import errno
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq


def fsync_dir(path: Path) -> None:
    """Make a rename or a new entry in `path` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write `data` to `path` via a temp file, fsync and rename: readers see the old or the new file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def atomic_write_table(path: Path, table: pa.Table) -> None:
    """`atomic_write_bytes` of `table` as a snappy-compressed parquet file."""
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="snappy")
    atomic_write_bytes(path, sink.getvalue().to_pybytes())


def move_into_place(src: Path, dst: Path) -> None:
    """Rename a finished (already fsynced) file to `dst`, creating its folder, and make the rename durable."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    os.replace(src, dst)
    fsync_dir(dst.parent)


def describe_os_error(err: OSError, what: str) -> str:
    """A message for a failed write that says what to do (disk full, not writable), prefixed with `what`."""
    if err.errno == errno.ENOSPC:
        return f"{what}: disk full ({err}). Free space or point the dataset root elsewhere; saved episodes are intact"
    if err.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"{what}: not writable ({err}). Fix permissions or choose another dataset root"
    return f"{what}: {err}"
