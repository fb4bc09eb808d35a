"""Encoder pretraining (stage 0) and the backbone-map cache of a frozen backbone in stage 2."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from vqbet_ros import constants
from vqbet_ros.config_io import ConfigError, from_dict, to_dict
from vqbet_ros.model.checkpoint import load_checkpoint
from vqbet_ros.model.policy import VQBeTPolicy
from vqbet_ros.training import train
from vqbet_ros.training.config import EncoderPretrainConfig, TrainConfig
from vqbet_ros.training.data import load_training_data
from vqbet_ros.training.encoder_pretrain import pretrain_encoders
from vqbet_ros.training.feature_cache import frozen_outputs
from vqbet_ros.training.monitor import Monitor

from training_fixtures import make_pusht_zarr, tiny_config

SIZE = 32


@pytest.fixture(scope="module")
def image_dataset(tmp_path_factory):
    return make_pusht_zarr(tmp_path_factory.mktemp("data"), episodes=6, length=40, image_size=SIZE)


def image_config(data_path, output_dir, freeze="backbone", **overrides) -> TrainConfig:
    """tiny_config with one SIZE x SIZE camera and the agent position; pretraining on the agent position;
    stage 2 with the backbone (`freeze="backbone"`) or the whole camera encoder (`"encoder"`) frozen."""
    raw = to_dict(tiny_config(data_path, output_dir))
    raw["model"]["spec"]["cameras"] = {"image": [3, SIZE, SIZE]}
    raw["model"]["spec"]["low_dim"] = {}
    # Average pooling and BatchNorm: the frames' colour carries the target (GroupNorm would normalize it away).
    raw["model"]["vision"] = {"backbone": "resnet18", "freeze_backbone": True, "pool": "avg", "group_norm": False,
                              "feature_dim": 16, "freeze_encoder": freeze == "encoder"}
    raw["encoder_pretrain"] = {"targets": [constants.STATE], "steps": 30, "batch_size": 16, "lr": 1e-3,
                               "bf16_autocast": False}
    raw["stage2"]["feature_cache_dir"] = str(output_dir / "feature_cache")
    for key, value in overrides.items():
        section, name = key.split(".")
        raw[section][name] = value
    return from_dict(TrainConfig, raw)


def _pretrained_val_loss(cfg: TrainConfig, steps: int, tmp_path) -> float:
    torch.manual_seed(0)
    policy = VQBeTPolicy(cfg.model)
    data = load_training_data(cfg.data, cfg.model.spec, targets=cfg.encoder_pretrain.targets)
    pretrain = from_dict(EncoderPretrainConfig, {**to_dict(cfg.encoder_pretrain), "steps": steps})
    result = pretrain_encoders(policy, data, pretrain, 0, torch.device("cpu"), Monitor(tmp_path, enabled=False), 10)
    return result["val_loss"]


def test_encoder_pretraining_learns_to_read_the_target_off_the_frame(image_dataset, tmp_path):
    torch.set_num_threads(2)
    cfg = image_config(image_dataset, tmp_path)
    untrained = _pretrained_val_loss(cfg, 1, tmp_path)
    trained = _pretrained_val_loss(cfg, 30, tmp_path)
    # The frames show the agent position: held-out frames are read far better than before training.
    assert trained < 0.3 * untrained, (trained, untrained)


def test_frozen_backbone_outputs_are_the_trunk_maps_and_are_reused_until_the_weights_change(image_dataset,
                                                                                           tmp_path):
    cfg = image_config(image_dataset, tmp_path)
    torch.manual_seed(0)
    policy = VQBeTPolicy(cfg.model).eval()
    encoder = policy.obs_encoder.cameras[0]
    frames = load_training_data(cfg.data, cfg.model.spec).arrays[constants.image_key("image")][:50]
    cache = tmp_path / "cache"
    maps = frozen_outputs(frames, encoder, torch.device("cpu"), str(cache))
    with torch.no_grad():
        expected = encoder.trunk(torch.from_numpy(frames)).numpy()
    assert maps.dtype == np.float16 and maps.shape == expected.shape
    np.testing.assert_allclose(maps.astype(np.float32), expected, rtol=1e-2, atol=1e-2)
    assert len(list(cache.glob("*.npy"))) == 1
    np.testing.assert_array_equal(frozen_outputs(frames, encoder, torch.device("cpu"), str(cache)), maps)
    assert len(list(cache.glob("*.npy"))) == 1  # read back, not computed again
    with torch.no_grad():
        next(encoder.backbone.parameters()).add_(0.1)
    assert not np.array_equal(frozen_outputs(frames, encoder, torch.device("cpu"), str(cache)), maps)
    assert len(list(cache.glob("*.npy"))) == 2


@pytest.mark.parametrize("freeze", ["backbone", "encoder"])
def test_observation_tokens_from_frozen_outputs_equal_tokens_from_images(image_dataset, tmp_path, freeze):
    cfg = image_config(image_dataset, tmp_path, freeze)
    torch.manual_seed(0)
    policy = VQBeTPolicy(cfg.model).eval()
    data = load_training_data(cfg.data, cfg.model.spec)
    key = constants.image_key("image")
    frames = data.arrays[key][:12]
    maps = frozen_outputs(frames, policy.obs_encoder.cameras[0], torch.device("cpu"), "")
    state = torch.from_numpy(data.arrays[constants.STATE][:12])
    with torch.no_grad():
        from_images = policy.encode_observations({key: torch.from_numpy(frames), constants.STATE: state})
        from_maps = policy.encode_observations({constants.frozen_output_key(key): torch.from_numpy(maps),
                                                constants.STATE: state})
    torch.testing.assert_close(from_maps, from_images, rtol=2e-2, atol=2e-2)


@pytest.mark.parametrize("freeze", ["backbone", "encoder"])
def test_train_with_pretraining_keeps_the_pretrained_part_frozen_in_stage2(image_dataset, tmp_path, freeze):
    cfg = image_config(image_dataset, tmp_path / "run", freeze, **{"stage2.steps": 6})
    cfg.checkpoint_every = 0  # checkpoints at stage ends only, so the one saved before stage 2 is kept
    _, _, summary = train.run(cfg, progress_bar=False)
    assert summary["encoder_pretrain_steps"] == 30 and summary["encoder_pretrain_val_loss"] > 0
    final = load_checkpoint(tmp_path / "run" / "final").policy.state_dict()
    # Saved when stage 1 ended; stage 1 trains only the tokenizer, so the encoder is stage 0's.
    after_stage0 = load_checkpoint(tmp_path / "run" / "checkpoints" / "stage2_0000000").policy.state_dict()
    torch.manual_seed(cfg.seed)
    fresh = VQBeTPolicy(cfg.model).state_dict()
    backbone = [k for k in final if ".backbone." in k and k.endswith("weight")]
    head = [k for k in final if k.startswith("obs_encoder.cameras.0.out.")]
    assert backbone and head
    assert any(not torch.equal(after_stage0[k], fresh[k]) for k in backbone)  # stage 0 trained it
    assert all(torch.equal(final[k], after_stage0[k]) for k in backbone)  # stage 2 left it as it was
    head_trained = any(not torch.equal(final[k], after_stage0[k]) for k in head)
    assert head_trained == (freeze == "backbone")  # ...and trained the projection unless it was frozen too
    assert len(list((tmp_path / "run" / "feature_cache").glob("*.npy"))) == 1


def test_pretraining_targets_need_a_camera(image_dataset, tmp_path):
    raw = to_dict(tiny_config(image_dataset, tmp_path))
    raw["encoder_pretrain"] = {"targets": [constants.STATE]}
    with pytest.raises(ConfigError, match="model.spec.cameras` is empty"):
        from_dict(TrainConfig, raw)


def test_train_cli_names_a_pretraining_target_the_dataset_lacks(image_dataset, tmp_path, capsys):
    cfg = image_config(image_dataset, tmp_path)
    path = tmp_path / "cfg.yaml"
    from vqbet_ros.config_io import save_yaml
    save_yaml(cfg, path)
    assert train.main(["--config", str(path), "--no-progress", "encoder_pretrain.targets=[observation.velocity]"]) == 2
    assert "`encoder_pretrain.targets`: " in capsys.readouterr().err
