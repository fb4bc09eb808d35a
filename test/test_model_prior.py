"""GPT prior: shapes, causality, goal tokens, block size, nanoGPT init."""
import math

import pytest
import torch

from vqbet_ros.model.config import PriorConfig
from vqbet_ros.model.prior import GPT


def tiny(**kw):
    return PriorConfig(**{"n_layer": 2, "n_head": 2, "n_embd": 16, "output_dim": 12, "dropout": 0.0,
                          "block_size": 8, **kw})


def test_gpt_gives_one_output_per_token():
    gpt = GPT(tiny(), input_dim=5)
    assert gpt(torch.randn(3, 4, 5)).shape == (3, 4, 12)


def test_gpt_is_causal_future_tokens_do_not_change_past_outputs():
    torch.manual_seed(0)
    gpt = GPT(tiny(), input_dim=5).eval()
    x = torch.randn(2, 6, 5)
    y = x.clone()
    y[:, 4:] = torch.randn(2, 2, 5)
    out_x, out_y = gpt(x), gpt(y)
    torch.testing.assert_close(out_x[:, :4], out_y[:, :4])
    assert not torch.allclose(out_x[:, 4:], out_y[:, 4:])


def test_gpt_goal_tokens_are_prepended_and_their_outputs_dropped():
    torch.manual_seed(0)
    gpt = GPT(tiny(n_goal_tokens=2, goal_dim=3), input_dim=5).eval()
    x = torch.randn(2, 4, 5)
    out_a = gpt(x, torch.randn(2, 2, 3))
    out_b = gpt(x, torch.randn(2, 2, 3))
    assert out_a.shape == (2, 4, 12)
    assert not torch.allclose(out_a, out_b)  # every observation position sees the goal
    with pytest.raises(ValueError, match="goal"):
        gpt(x)


def test_gpt_refuses_more_tokens_than_block_size():
    with pytest.raises(ValueError, match="block_size"):
        GPT(tiny(), input_dim=5)(torch.randn(1, 9, 5))


def test_gpt_init_is_nanogpt_normal_with_scaled_residual_projections():
    torch.manual_seed(0)
    gpt = GPT(PriorConfig(n_layer=4, n_head=2, n_embd=64, output_dim=64), input_dim=64)
    proj = torch.cat([b.attn.c_proj.weight.flatten() for b in gpt.transformer.h])
    fc = torch.cat([b.mlp.c_fc.weight.flatten() for b in gpt.transformer.h])
    assert abs(fc.std().item() - 0.02) < 0.002
    assert abs(proj.std().item() - 0.02 / math.sqrt(8)) < 0.001
    assert gpt.lm_head.bias is None
    assert all(b.attn.c_attn.bias.abs().sum() == 0 for b in gpt.transformer.h)


def test_gpt_tanh_gelu_option_selects_approximation():
    assert GPT(tiny(tanh_gelu=True), 5).transformer.h[0].mlp.gelu.approximate == "tanh"
    assert GPT(tiny(tanh_gelu=False), 5).transformer.h[0].mlp.gelu.approximate == "none"
