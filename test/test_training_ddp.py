"""DistributedDataParallel: two CPU processes on the gloo backend end with identical weights."""
from __future__ import annotations

import os
import socket

import torch
import torch.multiprocessing as mp
from safetensors.torch import load_file, save_file
from training_fixtures import make_pusht_zarr, tiny_config

from vqbet_ros.training import train


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank_main(rank: int, world: int, port: int, data, out) -> None:
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    policy, info, _ = train.run(tiny_config(data, out / "run"), progress_bar=False)
    assert info.world_size == world
    save_file({k: v.detach().contiguous() for k, v in policy.state_dict().items()}, str(out / f"rank{rank}.st"))


def test_ddp_two_gloo_processes_end_with_identical_weights(tmp_path):
    data = make_pusht_zarr(tmp_path)
    mp.spawn(_rank_main, args=(2, _free_port(), data, tmp_path), nprocs=2, join=True)
    rank0, rank1 = load_file(str(tmp_path / "rank0.st")), load_file(str(tmp_path / "rank1.st"))
    assert rank0.keys() == rank1.keys()
    for key in rank0:
        assert torch.equal(rank0[key], rank1[key]), key
    # Training happened: the saved checkpoint's weights are these, and stage 2 moved the GPT.
    final = load_file(str(tmp_path / "run" / "final" / "model.safetensors"))
    assert all(torch.equal(final[k], rank0[k]) for k in final)
    init = load_file(str(tmp_path / "run" / "checkpoints" / "stage2_0000002" / "model.safetensors"))
    assert not torch.equal(init["prior.lm_head.weight"], rank0["prior.lm_head.weight"])
