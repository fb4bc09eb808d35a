"""Checkpoint directories: exact round trip, atomic replace, refusal of pickles, errors naming file and field."""
import pickle
import re

import numpy as np
import pytest
import torch
import yaml
from safetensors.torch import load_file, save_file

from vqbet_ros import constants
from vqbet_ros.config_io import ConfigError
from vqbet_ros.model.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from vqbet_ros.model.config import FeatureSpec, HeadConfig, PriorConfig, TokenizerConfig, VisionConfig, VQBeTConfig
from vqbet_ros.model.policy import VQBeTPolicy


def tiny_config(argmax=False):
    spec = FeatureSpec(cameras={"top": [3, 32, 32]}, joint_names=["j0", "j1"], action_names=["j0", "j1"],
                       n_obs_steps=2, chunk_size=3)
    return VQBeTConfig(
        spec=spec,
        tokenizer=TokenizerConfig(latent_dim=16, hidden_dim=16, codebook_size=8),
        prior=PriorConfig(n_layer=1, n_head=2, n_embd=16, output_dim=16, dropout=0.0, block_size=4),
        heads=HeadConfig(hidden_dim=32, argmax=argmax),
        vision=VisionConfig(feature_dim=8, num_keypoints=4, crop_shape=[28, 28]),
        state_hidden_dim=16,
    )


STATS = {
    constants.STATE: {"min": np.array([0.0, -1.0]), "max": np.array([2.0, 1.0]), "count": np.array([7])},
    constants.ACTION: {"min": np.array([0.0, -1.0]), "max": np.array([2.0, 1.0]), "mean": np.array([1.0, 0.0])},
}


def observations(n=3):
    g = torch.Generator().manual_seed(4)
    return {constants.STATE: torch.randn(n, 2, 2, generator=g),
            constants.image_key("top"): torch.randint(0, 256, (n, 2, 3, 32, 32), dtype=torch.uint8, generator=g)}


def trained_policy(config):
    torch.manual_seed(0)
    policy = VQBeTPolicy(config)
    policy.train()
    policy.tokenizer_loss(torch.randn(32, 3, 2))  # one EMA step so codebooks differ from init
    policy.freeze_tokenizer()
    return policy.eval()


@pytest.fixture
def saved(tmp_path):
    config = tiny_config()
    policy = trained_policy(config)
    directory = save_checkpoint(tmp_path / "ckpt", config, policy, STATS, metadata={"step": 12})
    return directory, config, policy


def test_checkpoint_round_trip_reproduces_outputs_config_stats_and_metadata(saved):
    directory, config, policy = saved
    loaded = load_checkpoint(directory)
    assert loaded.config == config
    assert loaded.metadata == {"step": 12}
    assert not loaded.policy.training and loaded.policy.tokenizer.frozen
    np.testing.assert_array_equal(loaded.stats[constants.STATE]["count"], [7])
    np.testing.assert_array_equal(loaded.stats[constants.ACTION]["mean"], [1.0, 0.0])
    np.testing.assert_array_equal(loaded.normalizer.normalize(constants.ACTION, np.array([2.0, 1.0])), [1.0, 1.0])
    obs = observations()
    tokens = policy.encode_observations(obs)
    torch.testing.assert_close(loaded.policy.encode_observations(obs), tokens, rtol=0, atol=0)
    a = policy.predict_chunks(tokens, generator=torch.Generator().manual_seed(9))
    b = loaded.policy.predict_chunks(tokens, generator=torch.Generator().manual_seed(9))
    assert torch.equal(a, b)


def test_checkpoint_round_trip_with_argmax_is_exact(tmp_path):
    config = tiny_config(argmax=True)
    policy = trained_policy(config)
    loaded = load_checkpoint(save_checkpoint(tmp_path / "c", config, policy, STATS))
    tokens = policy.encode_observations(observations())
    assert torch.equal(policy.predict_chunk(tokens), loaded.policy.predict_chunk(tokens))
    assert all(not p.requires_grad for p in loaded.policy.tokenizer.parameters())


def test_save_checkpoint_replaces_an_existing_directory_without_leftovers(saved):
    directory, config, policy = saved
    save_checkpoint(directory, config, policy, STATS, metadata={"step": 13})
    assert load_checkpoint(directory).metadata == {"step": 13}
    assert sorted(p.name for p in directory.parent.iterdir()) == ["ckpt"]
    assert sorted(p.name for p in directory.iterdir()) == ["config.yaml", "metadata.yaml", "model.safetensors",
                                                           "stats.safetensors"]


def test_stats_are_stored_under_key_slash_stat_names(saved):
    directory, _, _ = saved
    assert "observation.state/min" in load_file(str(directory / "stats.safetensors"))


def test_missing_checkpoint_file_is_named(saved):
    directory, _, _ = saved
    (directory / "stats.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="stats.safetensors"):
        load_checkpoint(directory)
    with pytest.raises(FileNotFoundError, match="nowhere"):
        load_checkpoint(directory.parent / "nowhere")


def test_torch_save_payload_in_place_of_safetensors_is_refused(saved):
    directory, _, policy = saved
    torch.save(policy.state_dict(), directory / "model.safetensors")
    with pytest.raises(CheckpointError, match=r"model\.safetensors.*(pickle|torch\.save)"):
        load_checkpoint(directory)


def test_plain_pickle_stats_file_is_refused(saved):
    directory, _, _ = saved
    (directory / "stats.safetensors").write_bytes(pickle.dumps(STATS))
    with pytest.raises(CheckpointError, match=r"stats\.safetensors.*pickle"):
        load_checkpoint(directory)


def test_garbage_bytes_are_refused_as_not_safetensors(saved):
    directory, _, _ = saved
    (directory / "model.safetensors").write_bytes(b"hello world, not a tensor file")
    with pytest.raises(CheckpointError, match=r"model\.safetensors.*not a safetensors"):
        load_checkpoint(directory)


def test_tensor_shape_mismatch_names_file_and_tensor(saved):
    directory, _, _ = saved
    data = yaml.safe_load((directory / "config.yaml").read_text())
    data["tokenizer"]["latent_dim"] = 24
    (directory / "config.yaml").write_text(yaml.safe_dump(data))
    with pytest.raises(CheckpointError, match=r"model\.safetensors.*tokenizer\.encoder\.\d+\.(weight|bias)"):
        load_checkpoint(directory)


def test_missing_tensor_names_file_and_key(saved):
    directory, _, _ = saved
    tensors = load_file(str(directory / "model.safetensors"))
    del tensors["tokenizer.vq.frozen"]
    save_file(tensors, str(directory / "model.safetensors"))
    with pytest.raises(CheckpointError, match=r"model\.safetensors.*missing.*tokenizer\.vq\.frozen"):
        load_checkpoint(directory)


def test_unexpected_tensor_names_file_and_key(saved):
    directory, _, _ = saved
    tensors = load_file(str(directory / "model.safetensors"))
    tensors["heads.extra.weight"] = torch.zeros(2)
    save_file(tensors, str(directory / "model.safetensors"))
    with pytest.raises(CheckpointError, match=r"model\.safetensors.*unexpected.*heads\.extra\.weight"):
        load_checkpoint(directory)


def test_bad_config_field_names_file_and_field(saved):
    directory, _, _ = saved
    data = yaml.safe_load((directory / "config.yaml").read_text())
    data["prior"]["n_head"] = "six"
    (directory / "config.yaml").write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match=r"config\.yaml.*prior\.n_head"):
        load_checkpoint(directory)


def test_stats_missing_for_a_spec_key_names_file_and_key(saved):
    directory, _, _ = saved
    save_file({"action/min": torch.zeros(2), "action/max": torch.ones(2)}, str(directory / "stats.safetensors"))
    with pytest.raises(CheckpointError, match=r"stats\.safetensors.*observation\.state/min"):
        load_checkpoint(directory)


def test_save_refuses_stats_that_lack_a_spec_key(tmp_path):
    config = tiny_config()
    with pytest.raises(CheckpointError, match=r"observation\.state/min"):
        save_checkpoint(tmp_path / "c", config, trained_policy(config), {constants.ACTION: STATS[constants.ACTION]})
    assert list(tmp_path.iterdir()) == []


def test_metadata_with_numpy_values_is_saved_as_plain_yaml(tmp_path):
    config = tiny_config()
    directory = save_checkpoint(tmp_path / "c", config, trained_policy(config), STATS,
                                metadata={"loss": np.float32(0.5), "steps": np.int64(3), "dir": tmp_path})
    assert load_checkpoint(directory).metadata == {"loss": 0.5, "steps": 3, "dir": str(tmp_path)}


@pytest.mark.parametrize("file", ["model.safetensors", "stats.safetensors"])
def test_load_refuses_non_finite_weights_or_stats_naming_the_tensor(saved, file):
    directory, _, _ = saved
    tensors = load_file(str(directory / file))
    name = sorted(k for k, t in tensors.items() if t.is_floating_point())[-1]
    tensors[name].view(-1)[0] = float("nan")
    save_file(tensors, str(directory / file))
    with pytest.raises(CheckpointError, match=re.escape(f"{file}`: tensor `{name}` holds 1 non-finite")):
        load_checkpoint(directory)


def test_save_refuses_non_finite_weights_or_stats_and_writes_nothing(tmp_path):
    config = tiny_config()
    policy = trained_policy(config)
    stats = {key: dict(entry) for key, entry in STATS.items()}
    stats[constants.ACTION]["max"] = np.array([np.inf, 1.0])
    with pytest.raises(CheckpointError, match=r"tensor `action/max` holds 1 non-finite"):
        save_checkpoint(tmp_path / "ckpt", config, policy, stats)
    with torch.no_grad():
        next(policy.prior.parameters()).fill_(float("nan"))
    with pytest.raises(CheckpointError, match=r"\(weights, nothing was written\): tensor `prior\."):
        save_checkpoint(tmp_path / "ckpt", config, policy, STATS)
    assert not (tmp_path / "ckpt").exists() and list(tmp_path.iterdir()) == []


def test_load_names_a_checkpoint_path_that_is_a_file(saved):
    directory, _, _ = saved
    with pytest.raises(FileNotFoundError, match=r"model\.safetensors` is a file, expected a checkpoint directory"):
        load_checkpoint(directory / "model.safetensors")
