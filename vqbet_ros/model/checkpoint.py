"""Checkpoint directories: `config.yaml`, `model.safetensors`, `stats.safetensors` (+ `metadata.yaml`).

Written to a temporary sibling directory and renamed into place, so a reader never sees half a checkpoint.
Nothing is ever unpickled: a `.pt`/pickle payload in place of a safetensors file is refused with a message.
Non-finite weights or stats (a diverged run, a NaN in the data) are refused at save and at load, naming the
tensor: a policy node must never act on them.
Stats are stored flat as `<dataset key>/<stat name>` tensors, e.g. `observation.state/min`.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import struct
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from vqbet_ros import constants
from vqbet_ros.config_io import ConfigError, load_yaml, save_yaml
from vqbet_ros.model.config import VQBeTConfig
from vqbet_ros.model.normalize import Normalizer
from vqbet_ros.model.policy import VQBeTPolicy

log = logging.getLogger(__name__)

CONFIG_FILE = "config.yaml"
MODEL_FILE = "model.safetensors"
STATS_FILE = "stats.safetensors"
METADATA_FILE = "metadata.yaml"


class CheckpointError(ValueError):
    """A checkpoint file is unreadable or does not match its config; the message names file and key."""


@dataclass
class LoadedCheckpoint:
    config: VQBeTConfig
    policy: VQBeTPolicy
    normalizer: Normalizer
    stats: dict[str, dict[str, np.ndarray]]
    metadata: dict[str, Any] = field(default_factory=dict)


def _flatten_stats(stats: dict[str, dict[str, Any]]) -> dict[str, torch.Tensor]:
    flat = {}
    for key, entry in stats.items():
        for name, value in entry.items():
            array = np.asarray(value)
            if not (np.issubdtype(array.dtype, np.number) or array.dtype == np.bool_):
                raise ValueError(f"stats `{key}/{name}`: expected a numeric array, got dtype {array.dtype}")
            flat[f"{key}/{name}"] = torch.from_numpy(np.ascontiguousarray(array))
    return flat


def _plain(value: Any) -> Any:
    """numpy scalars/arrays and paths in metadata -> YAML-safe Python values."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (np.generic, np.ndarray)):
        return value.tolist()
    if isinstance(value, torch.Tensor):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    return value


def save_checkpoint(directory: str | Path, config: VQBeTConfig, policy: VQBeTPolicy,
                    stats: dict[str, dict[str, Any]], metadata: dict[str, Any] | None = None) -> Path:
    """Write the checkpoint directory atomically (temp dir + rename); an existing one is replaced.

    `stats` must hold min/max for every vector the spec names (action, state, low-dim extras)."""
    directory = Path(directory)
    _check_stats(stats, config, "save_checkpoint `stats`")
    tensors = {k: v.detach().cpu().contiguous() for k, v in policy.state_dict().items()}
    flat_stats = _flatten_stats(stats)
    for kind, values in (("weights", tensors), ("stats", flat_stats)):
        _check_finite(values, f"save_checkpoint `{directory}` ({kind}, nothing was written)")
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = directory.parent / f".{directory.name}.tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        save_yaml(config, tmp / CONFIG_FILE)
        save_file(tensors, str(tmp / MODEL_FILE), metadata={"format": "pt"})
        save_file(flat_stats, str(tmp / STATS_FILE), metadata={"format": "pt"})
        if metadata is not None:
            (tmp / METADATA_FILE).write_text(yaml.safe_dump(_plain(metadata), sort_keys=False))
        old = None
        if directory.exists():
            old = directory.parent / f".{directory.name}.old-{uuid.uuid4().hex[:8]}"
            os.replace(directory, old)
        os.replace(tmp, directory)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info("saved checkpoint %s", directory)
    return directory


def _require(path: Path) -> Path:
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint file `{path}` is missing; a checkpoint directory holds "
                                f"{CONFIG_FILE}, {MODEL_FILE} and {STATS_FILE} written by save_checkpoint")
    return path


def _check_safetensors_bytes(path: Path) -> None:
    """Refuse anything that is not a safetensors file before handing it to a loader (never unpickle)."""
    with open(path, "rb") as f:
        head = f.read(9)
    size = path.stat().st_size
    if len(head) == 9:
        header_len = struct.unpack("<Q", head[:8])[0]
        if 0 < header_len and 8 + header_len <= size and head[8:9] == b"{":
            return
    if head[:2] == b"PK" or head[:1] == b"\x80":
        kind = "a torch.save zip archive" if head[:2] == b"PK" else "a Python pickle"
        raise CheckpointError(f"`{path}` is {kind}, not safetensors; pickles are never loaded (they can run "
                              f"code). Re-save the weights with safetensors (save_checkpoint or "
                              f"safetensors.torch.save_file).")
    raise CheckpointError(f"`{path}` is not a safetensors file (bad header); re-save it with "
                          f"save_checkpoint or safetensors.torch.save_file.")


def _load_tensors(path: Path) -> dict[str, torch.Tensor]:
    _check_safetensors_bytes(path)
    try:
        return load_file(str(path))
    except (SafetensorError, json.JSONDecodeError, ValueError, OSError) as err:
        raise CheckpointError(f"`{path}` could not be read as safetensors: {err}") from None


def _check_finite(tensors: dict[str, torch.Tensor], where: str) -> None:
    for name, tensor in tensors.items():
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            bad = int((~torch.isfinite(tensor)).sum())
            raise CheckpointError(
                f"{where}: tensor `{name}` holds {bad} non-finite value(s) (NaN or inf) of {tensor.numel()}; the "
                "run that made it diverged or its data held NaN/inf. Use an earlier checkpoint or retrain "
                "(vqbet-train refuses such data and stops when the loss is not finite)"
            )


def _unflatten_stats(flat: dict[str, torch.Tensor], path: Path) -> dict[str, dict[str, np.ndarray]]:
    stats: dict[str, dict[str, np.ndarray]] = {}
    for name, tensor in flat.items():
        if "/" not in name:
            raise CheckpointError(f"`{path}`: tensor `{name}` is not named `<dataset key>/<stat>`")
        key, stat = name.rsplit("/", 1)
        stats.setdefault(key, {})[stat] = tensor.numpy()
    return stats


def _check_stats(stats: dict[str, dict[str, Any]], config: VQBeTConfig, where: str) -> None:
    spec = config.spec
    needed = {constants.ACTION: spec.action_dim}
    if spec.joint_names:
        needed[constants.STATE] = spec.state_dim
    for name, size in spec.low_dim.items():
        needed[constants.low_dim_key(name)] = size
    for key, size in needed.items():
        for stat in ("min", "max"):
            if stat not in stats.get(key, {}):
                raise CheckpointError(f"{where}: missing `{key}/{stat}`, which the config's spec needs")
            shape = tuple(np.shape(stats[key][stat]))
            if shape != (size,):
                raise CheckpointError(f"{where}: `{key}/{stat}` has shape {shape}, the config's spec needs "
                                      f"({size},)")


def _check_state_dict(loaded: dict[str, torch.Tensor], expected: dict[str, torch.Tensor], path: Path,
                      config_path: Path) -> None:
    missing = [k for k in expected if k not in loaded]
    unexpected = [k for k in loaded if k not in expected]
    if missing:
        raise CheckpointError(f"`{path}`: missing tensor(s) {missing[:5]}{' ...' if len(missing) > 5 else ''} "
                              f"that the model built from `{config_path}` needs; the file and the config do "
                              f"not belong together")
    if unexpected:
        raise CheckpointError(f"`{path}`: unexpected tensor(s) {unexpected[:5]}"
                              f"{' ...' if len(unexpected) > 5 else ''} not in the model built from "
                              f"`{config_path}`; the file and the config do not belong together")
    for key, ref in expected.items():
        got = loaded[key]
        if got.shape != ref.shape or got.dtype != ref.dtype:
            raise CheckpointError(f"`{path}`: tensor `{key}` has shape {tuple(got.shape)} ({got.dtype}) but "
                                  f"the model built from `{config_path}` expects {tuple(ref.shape)} "
                                  f"({ref.dtype}); the file and the config do not belong together")


def load_checkpoint(directory: str | Path, device: str | torch.device = "cpu") -> LoadedCheckpoint:
    """Read a checkpoint directory; returns the policy in eval mode on `device`."""
    directory = Path(directory)
    if directory.is_file():
        raise FileNotFoundError(f"`{directory}` is a file, expected a checkpoint directory (holding {CONFIG_FILE}, "
                                f"{MODEL_FILE} and {STATS_FILE}); pass the folder that contains it")
    if not directory.is_dir():
        raise FileNotFoundError(f"checkpoint directory `{directory}` does not exist")
    config_path = _require(directory / CONFIG_FILE)
    model_path = _require(directory / MODEL_FILE)
    stats_path = _require(directory / STATS_FILE)
    config = load_yaml(VQBeTConfig, config_path)  # ConfigError names the file and the key path
    flat_stats = _load_tensors(stats_path)
    _check_finite(flat_stats, f"`{stats_path}`")
    stats = _unflatten_stats(flat_stats, stats_path)
    _check_stats(stats, config, f"`{stats_path}`")
    try:
        policy = VQBeTPolicy(config, load_pretrained=False)
    except ConfigError as err:
        raise ConfigError(f"{config_path}: {err}") from None
    state = _load_tensors(model_path)
    _check_state_dict(state, policy.state_dict(), model_path, config_path)
    _check_finite(state, f"`{model_path}`")
    policy.load_state_dict(state)
    metadata: dict[str, Any] = {}
    if (directory / METADATA_FILE).is_file():
        try:
            metadata = yaml.safe_load((directory / METADATA_FILE).read_text()) or {}
        except yaml.YAMLError as err:
            raise CheckpointError(f"`{directory / METADATA_FILE}` is not valid YAML: {err}") from None
    policy.to(device).eval()
    return LoadedCheckpoint(config=config, policy=policy, normalizer=Normalizer(stats), stats=stats,
                            metadata=metadata)
