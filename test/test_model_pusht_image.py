"""The shipped image policy (`models/pusht_image`) decides from what its camera sees."""
from pathlib import Path

import numpy as np
import pytest
import torch

from vqbet_ros import constants
from vqbet_ros.model.checkpoint import load_checkpoint

CHECKPOINT = Path(__file__).resolve().parents[1] / "models" / "pusht_image"


def _chunk(ckpt, image: np.ndarray, agent_xy: np.ndarray) -> np.ndarray:
    """The chunk (W, 2) in PushT pixels after `n_obs_steps` identical frames, with the most likely codes."""
    spec = ckpt.config.spec
    (camera,) = spec.image_keys.values()
    history = spec.n_obs_steps
    state = ckpt.normalizer.normalize(constants.STATE, agent_xy.astype(np.float32))
    obs = {camera: torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))[None, None].expand(1, history, -1, -1, -1),
           constants.STATE: torch.from_numpy(state)[None, None].expand(1, history, -1)}
    with torch.no_grad():
        tokens = ckpt.policy.encode_observations(obs)
        chunk = ckpt.policy.predict_chunk(tokens)[0].numpy()
    return ckpt.normalizer.unnormalize(constants.ACTION, chunk)


def test_pusht_image_policy_plans_differently_when_the_block_moves_in_the_frame():
    pytest.importorskip("gym_pusht")
    from vqbet_ros.pusht.robot import PushTRobot

    ckpt = load_checkpoint(CHECKPOINT)
    ckpt.policy.eval()
    ckpt.config.heads.argmax = True  # the most likely codes: a deterministic decision
    robot = PushTRobot(protocol="official")
    agent = np.array([120.0, 380.0])
    try:
        frames = [robot.reset(state=np.array([*agent, *block])).image
                  for block in ([200.0, 180.0, 0.3], [360.0, 330.0, 2.2], [200.0, 180.0, 0.3])]
    finally:
        robot.close()
    first, moved, again = (_chunk(ckpt, frame, agent) for frame in frames)
    np.testing.assert_array_equal(first, again)  # the same frame gives the same plan
    # Only the block moved (same agent position, same state input): the plan changes by many pixels.
    assert np.abs(first - moved).max() > 20.0, (first, moved)
