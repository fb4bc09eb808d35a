"""The shipped checkpoint `models/pusht_state` still loads and still gives the same chunk for a fixed input.

The golden file `test/golden/pusht_state_chunk.safetensors` holds a fixed raw observation history (agent
position and block keypoints in PushT pixels, seeded), the most likely codes (argmax) the checkpoint picks for
it and the chunk it predicts (pixels). A renamed submodule, a changed token layout or normalisation, or a new
checkpoint all show up here. After replacing `models/pusht_state` on purpose, regenerate with one command:

    PYTHONPATH=$PWD python test/test_model_golden.py

and commit the golden file with the checkpoint.
"""
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from vqbet_ros import constants

ROOT = Path(__file__).resolve().parents[1]
CHECKPOINT = ROOT / "models" / "pusht_state"
GOLDEN = Path(__file__).with_name("golden") / "pusht_state_chunk.safetensors"
STATE, ENV_STATE = constants.STATE, constants.ENV_STATE


def fixed_history(n_obs_steps: int) -> dict[str, np.ndarray]:
    """A seeded raw observation history (1, T, D) inside the PushT workspace (pixels)."""
    rng = np.random.default_rng(20240301)
    return {STATE: rng.uniform(100.0, 400.0, size=(1, n_obs_steps, 2)).astype(np.float32),
            ENV_STATE: rng.uniform(100.0, 400.0, size=(1, n_obs_steps, 18)).astype(np.float32)}


def predict(history: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """The checkpoint on `history`, argmax codes: {"codes": (1, Nq), "chunk": (1, W, A) pixels}."""
    from vqbet_ros.model.checkpoint import load_checkpoint

    loaded = load_checkpoint(CHECKPOINT)
    policy, normalizer = loaded.policy, loaded.normalizer
    obs = {key: torch.from_numpy(np.asarray(normalizer.normalize(key, value), dtype=np.float32))
           for key, value in history.items()}
    with torch.no_grad():
        tokens = policy.encode_observations(obs)  # (1, T, Dt)
        features = policy.prior(tokens)[:, -1]  # (1, F): the executed (last) position
        codes = policy.heads.code_head.sample(features, argmax=True)  # (1, Nq)
        policy.config.heads.argmax = True  # as `vqbet-eval --argmax`: the chunk of those codes
        chunk = policy.predict_chunk(tokens)  # (1, W, A) normalized
    chunk = normalizer.unnormalize(constants.ACTION, chunk.numpy())
    return {"codes": codes, "chunk": torch.as_tensor(np.asarray(chunk, dtype=np.float32))}


def test_model_golden_pusht_state_gives_the_stored_chunk():
    if not GOLDEN.is_file():
        pytest.fail(f"`{GOLDEN}` is missing; create it with `PYTHONPATH=$PWD python test/test_model_golden.py`")
    golden = load_file(GOLDEN)
    history = {STATE: golden[STATE].numpy(), ENV_STATE: golden[ENV_STATE].numpy()}
    result = predict(history)
    assert result["codes"].tolist() == golden["codes"].tolist(), (
        "the argmax codes changed; if `models/pusht_state` was replaced on purpose, regenerate the golden file "
        "(see this module's docstring)")
    torch.testing.assert_close(result["chunk"], golden["chunk"], rtol=1e-4, atol=1e-3)


def regenerate() -> None:
    from vqbet_ros.config_io import load_yaml
    from vqbet_ros.model.config import VQBeTConfig

    torch.set_num_threads(1)  # the thread count the tests run with
    spec = load_yaml(VQBeTConfig, CHECKPOINT / "config.yaml").spec
    history = fixed_history(spec.n_obs_steps)
    result = predict(history)
    GOLDEN.parent.mkdir(exist_ok=True)
    save_file({**{k: torch.from_numpy(v) for k, v in history.items()}, **result}, str(GOLDEN))
    print(f"wrote {GOLDEN}: codes {result['codes'].tolist()}, chunk[0] {result['chunk'][0, 0].tolist()}")


if __name__ == "__main__":
    regenerate()
