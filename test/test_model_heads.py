"""Code/offset heads: focal loss formula, offset selection, sampling, sequential conditioning."""
import pytest
import torch
import torch.nn.functional as F

from vqbet_ros.config_io import ConfigError
from vqbet_ros.model.config import HeadConfig
from vqbet_ros.model.heads import CodeHead, OffsetHead, focal_loss, sample_codes


def test_focal_loss_matches_direct_formula():
    torch.manual_seed(0)
    logits, targets = torch.randn(7, 5), torch.randint(0, 5, (7,))
    probs = torch.softmax(logits, dim=-1)
    expected = torch.stack([-(1 - probs[i, t]) ** 2 * torch.log(probs[i, t]) for i, t in enumerate(targets)])
    torch.testing.assert_close(focal_loss(logits, targets, gamma=2.0), expected)


def test_focal_loss_with_gamma_zero_is_cross_entropy():
    torch.manual_seed(0)
    logits, targets = torch.randn(7, 5), torch.randint(0, 5, (7,))
    torch.testing.assert_close(focal_loss(logits, targets, 0.0).mean(), F.cross_entropy(logits, targets))


def test_offset_select_sums_each_layers_offset_at_its_code():
    torch.manual_seed(0)
    offsets, codes = torch.randn(4, 2, 3, 6), torch.randint(0, 3, (4, 2))
    expected = torch.stack([offsets[n, 0, codes[n, 0]] + offsets[n, 1, codes[n, 1]] for n in range(4)])
    torch.testing.assert_close(OffsetHead.select(offsets, codes), expected)


def test_offset_head_gives_one_offset_chunk_per_layer_and_code():
    head = OffsetHead(HeadConfig(hidden_dim=8), in_dim=5, n_layers=2, codebook_size=3, chunk_flat=6)
    assert head(torch.randn(4, 5)).shape == (4, 2, 3, 6)


def test_sample_codes_argmax_temperature_and_generator():
    logits = torch.tensor([[0.0, 3.0, 1.0], [2.0, 0.0, 0.0]])
    assert sample_codes(logits, argmax=True).tolist() == [1, 0]
    a = sample_codes(logits.repeat(50, 1), generator=torch.Generator().manual_seed(5))
    b = sample_codes(logits.repeat(50, 1), generator=torch.Generator().manual_seed(5))
    assert torch.equal(a, b)
    cold = sample_codes(logits.repeat(50, 1), temperature=1e-3, generator=torch.Generator().manual_seed(5))
    assert torch.equal(cold, logits.argmax(-1).repeat(50))


def test_joint_code_head_gives_logits_per_layer():
    head = CodeHead(HeadConfig(hidden_dim=8), in_dim=5, n_layers=2, codebook_size=4)
    assert head(torch.randn(3, 5)).shape == (3, 2, 4)
    assert head.sample(torch.randn(3, 5)).shape == (3, 2)


def test_sequential_code_head_conditions_secondary_on_given_primary():
    torch.manual_seed(0)
    head = CodeHead(HeadConfig(hidden_dim=16, sequential_codes=True), in_dim=5, n_layers=2, codebook_size=4)
    assert head.primary[0].out_features == 8  # official 512 = half the joint head's 1024
    features = torch.randn(3, 5)
    a = head(features, primary=torch.tensor([0, 0, 0]))
    b = head(features, primary=torch.tensor([1, 1, 1]))
    torch.testing.assert_close(a[:, 0], b[:, 0])
    assert not torch.allclose(a[:, 1], b[:, 1])
    codes = head.sample(features, argmax=True)
    expected_secondary = head.secondary_logits(features, codes[:, 0]).argmax(-1)  # conditioned on the sample
    assert torch.equal(codes[:, 1], expected_secondary)


def test_sequential_code_head_needs_two_layers():
    with pytest.raises(ConfigError, match="n_vq_layers"):
        CodeHead(HeadConfig(sequential_codes=True), in_dim=5, n_layers=3, codebook_size=4)
