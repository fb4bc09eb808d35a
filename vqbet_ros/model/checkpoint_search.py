"""Which checkpoint directory a program runs when it is given none: `find_checkpoint`. Free of torch, so a
launch file can call it without loading the model.

Each robot wing names its checkpoints (`pusht.wiring.CHECKPOINT`, `so101.wiring.CHECKPOINT`); `vqbet-demo` and
the demo launch files search the same folders with them.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class CheckpointName:
    """A robot's checkpoints: directories whose name contains `robot`; among them, one containing `preferred`
    is picked first. `any_if_none`: with none of the robot's, any checkpoint (a models folder of that robot's
    only, named otherwise)."""

    robot: str
    preferred: str
    any_if_none: bool = False


def find_checkpoint(explicit: Path | None, name: CheckpointName, option: str = "--checkpoint ",
                    models_dirs: Sequence[Path] = ()) -> Path:
    """The checkpoint to run: `explicit`, else the robot's one in `models_dirs`, ./models or <repo>/models.
    Errors name `option`, how the caller's user passes a checkpoint (`checkpoint:=` in a launch)."""
    if explicit is not None:
        if not (explicit / "config.yaml").is_file():
            raise FileNotFoundError(f"`{option}{explicit}` is not a checkpoint directory (no config.yaml)")
        return explicit
    found = []
    searched = list(dict.fromkeys([*models_dirs, Path.cwd() / "models", REPO_ROOT / "models"]))
    for models in searched:
        if models.is_dir():
            found += sorted(p.parent for p in models.glob("*/config.yaml"))
            found += sorted(p.parent for p in models.glob("*/*/config.yaml"))
    where = ", ".join(str(d) for d in searched)
    if not found:
        raise FileNotFoundError(
            f"no checkpoint found in {where}; pass `{option}DIR` (a directory with "
            "config.yaml, model.safetensors, stats.safetensors, e.g. the output of vqbet-train)")
    mine = [p for p in found if name.robot in p.name.lower()]
    if not mine and not name.any_if_none:
        raise FileNotFoundError(
            f"no {name.robot} checkpoint (a directory whose name contains `{name.robot}`) in {where}; found only "
            f"{[p.name for p in found]}; pass `{option}DIR`")
    best = [p for p in mine if name.preferred in p.name.lower()]
    return (best or mine or found)[0]
