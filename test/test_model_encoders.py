"""Observation encoders: spatial softmax, crops, GroupNorm, token sizes for 0/1/2 cameras, offline pretrained."""
import time

import pytest
import torch

from vqbet_ros import constants
from vqbet_ros.model.config import FeatureSpec, VisionConfig
from vqbet_ros.model.encoders import ObservationEncoder, RgbEncoder, SpatialSoftmax


VISION = VisionConfig(feature_dim=8, num_keypoints=4)


def images(*lead, h=32, w=32):
    return torch.randint(0, 256, (*lead, 3, h, w), dtype=torch.uint8)


def test_spatial_softmax_returns_coordinates_of_a_sharp_peak():
    ss = SpatialSoftmax(in_channels=1, height=5, width=9, num_keypoints=1)
    with torch.no_grad():
        ss.keypoints.weight.fill_(1.0)
        ss.keypoints.bias.zero_()
    fmap = torch.zeros(1, 1, 5, 9)
    fmap[0, 0, 4, 0] = 100.0  # bottom-left corner
    torch.testing.assert_close(ss(fmap), torch.tensor([[-1.0, 1.0]]))  # (x, y) in [-1, 1]


@pytest.mark.parametrize("cameras", [{}, {"top": [3, 32, 32]}, {"top": [3, 32, 32], "wrist": [3, 24, 32]}])
def test_observation_encoder_gives_one_token_per_step_for_0_1_2_cameras(cameras):
    spec = FeatureSpec(cameras=cameras, joint_names=["a", "b"], action_names=["a"], low_dim={"env": 3})
    enc = ObservationEncoder(spec, VISION, state_hidden_dim=16)
    assert enc.token_dim == 8 * len(cameras) + 16
    obs = {constants.STATE: torch.randn(2, 3, 2), constants.low_dim_key("env"): torch.randn(2, 3, 3)}
    for cam, shape in cameras.items():
        obs[constants.image_key(cam)] = images(2, 3, h=shape[1], w=shape[2])
    assert enc(obs).shape == (2, 3, enc.token_dim)
    flat = {k: v[:, -1] for k, v in obs.items()}  # leading dims (N,)
    assert enc(flat).shape == (2, enc.token_dim)


def test_observation_encoder_images_only_spec_has_no_state_mlp():
    spec = FeatureSpec(cameras={"top": [3, 32, 32]}, action_names=["a"])
    enc = ObservationEncoder(spec, VISION, state_hidden_dim=16)
    assert enc.vector_mlp is None and enc.token_dim == 8
    assert enc({constants.image_key("top"): images(4)}).shape == (4, 8)


def test_observation_encoder_names_a_missing_or_misshaped_key():
    spec = FeatureSpec(cameras={"top": [3, 32, 32]}, joint_names=["a"], action_names=["a"])
    enc = ObservationEncoder(spec, VISION, state_hidden_dim=16)
    with pytest.raises(KeyError, match="observation.state"):
        enc({constants.image_key("top"): images(1)})
    with pytest.raises(ValueError, match="observation.images.top"):
        enc({constants.image_key("top"): images(1, h=16), constants.STATE: torch.zeros(1, 1)})
    with pytest.raises(TypeError, match="uint8"):
        enc({constants.image_key("top"): images(1).float(), constants.STATE: torch.zeros(1, 1)})


def test_rgb_encoder_crops_randomly_in_training_and_centrally_in_eval():
    enc = RgbEncoder(VisionConfig(feature_dim=8, num_keypoints=4, resize_shape=[40, 40], crop_shape=[32, 30]),
                     [3, 36, 36])
    x = images(6, h=36, w=36)
    enc.train()
    torch.manual_seed(0)
    a = enc.preprocess(x)
    b = enc.preprocess(x)
    assert a.shape == (6, 3, 32, 30) and not torch.equal(a, b)
    enc.eval()
    c = enc.preprocess(x)
    resized = torch.nn.functional.interpolate(x.float() / 255, size=(40, 40), mode="bilinear", align_corners=False)
    torch.testing.assert_close(c, resized[:, :, 4:36, 5:35])


def test_rgb_encoder_random_crop_is_a_window_of_the_image():
    enc = RgbEncoder(VisionConfig(feature_dim=8, num_keypoints=4, crop_shape=[20, 20]), [3, 32, 32]).train()
    x = images(3)
    crops = enc.preprocess(x)
    full = x.float() / 255
    for n in range(3):
        found = any(torch.equal(crops[n], full[n, :, t:t + 20, l:l + 20]) for t in range(13) for l in range(13))
        assert found


def test_rgb_encoder_group_norm_option_replaces_batch_norm():
    gn = RgbEncoder(VisionConfig(group_norm=True, feature_dim=8), [3, 32, 32])
    bn = RgbEncoder(VisionConfig(group_norm=False, feature_dim=8), [3, 32, 32])
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in gn.modules())
    assert any(isinstance(m, torch.nn.GroupNorm) for m in gn.modules())
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in bn.modules())


def test_rgb_encoder_frozen_backbone_stays_in_eval_and_gets_no_grad():
    enc = RgbEncoder(VisionConfig(group_norm=False, freeze_backbone=True, pool="avg", feature_dim=8), [3, 32, 32])
    enc.train()
    assert not enc.backbone.training and enc.out.training
    assert not any(p.requires_grad for p in enc.backbone.parameters())
    assert enc(images(2)).shape == (2, 8)


def test_rgb_encoder_with_two_backbone_stages_keeps_a_finer_map_and_fewer_weights():
    full = RgbEncoder(VisionConfig(feature_dim=8), [3, 96, 96])
    short = RgbEncoder(VisionConfig(backbone_stages=2, feature_dim=8), [3, 96, 96])
    assert tuple(full.trunk(images(1, h=96, w=96)).shape[1:]) == (512, 3, 3)
    assert tuple(short.trunk(images(1, h=96, w=96)).shape[1:]) == (128, 12, 12)  # stride 8
    assert sum(p.numel() for p in short.backbone.parameters()) < 0.1 * sum(p.numel() for p in full.backbone.parameters())
    assert short(images(2, h=96, w=96)).shape == (2, 8)


def test_rgb_encoder_frozen_whole_gets_no_grad_anywhere():
    enc = RgbEncoder(VisionConfig(freeze_backbone=True, freeze_encoder=True, feature_dim=8), [3, 32, 32])
    assert not any(p.requires_grad for p in enc.parameters())
    x = images(3)
    torch.testing.assert_close(enc.after_frozen(enc.frozen_part(x)), enc(x))


@pytest.mark.parametrize("fields, message", [
    ({"freeze_encoder": True}, "set `freeze_backbone: true` as well"),
    ({"backbone_stages": 5}, "`backbone_stages`: a ResNet has 4 residual stages"),
])
def test_vision_config_refuses_inconsistent_freezing_and_stage_counts(fields, message):
    from vqbet_ros.config_io import ConfigError

    with pytest.raises(ConfigError, match=message):
        VisionConfig(**fields)


def test_pretrained_backbone_without_cached_weights_fails_fast_with_instructions(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    start = time.monotonic()
    with pytest.raises(FileNotFoundError) as err:
        RgbEncoder(VisionConfig(pretrained=True, group_norm=False), [3, 32, 32])
    assert time.monotonic() - start < 5.0
    message = str(err.value)
    assert "vision.pretrained" in message and str(tmp_path) in message and "resnet18" in message
