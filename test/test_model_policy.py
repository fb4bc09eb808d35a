"""VQBeTPolicy: shapes for 0/1/2 cameras, stage-2 loss rules (sampled-code offsets, padding, frozen
tokenizer), and the bimodal toy problem that separates VQ-BeT from MSE regression."""
import pytest
import torch

from vqbet_ros import constants
from vqbet_ros.model.config import FeatureSpec, HeadConfig, PriorConfig, TokenizerConfig, VisionConfig, VQBeTConfig
from vqbet_ros.model.heads import OffsetHead
from vqbet_ros.model.policy import VQBeTPolicy


def tiny_config(cameras=None, n_obs_steps=2, chunk_size=3, **heads):
    spec = FeatureSpec(cameras=cameras or {}, joint_names=["j0", "j1"], action_names=["j0", "j1"],
                       n_obs_steps=n_obs_steps, chunk_size=chunk_size)
    return VQBeTConfig(
        spec=spec,
        tokenizer=TokenizerConfig(latent_dim=16, hidden_dim=16, codebook_size=8),
        prior=PriorConfig(n_layer=1, n_head=2, n_embd=16, output_dim=16, dropout=0.0, block_size=4),
        heads=HeadConfig(hidden_dim=32, **heads),
        vision=VisionConfig(feature_dim=8, num_keypoints=4),
        state_hidden_dim=16,
    )


def observations(config, *lead):
    obs = {constants.STATE: torch.randn(*lead, config.spec.state_dim)}
    for cam, shape in config.spec.cameras.items():
        obs[constants.image_key(cam)] = torch.randint(0, 256, (*lead, *shape), dtype=torch.uint8)
    return obs


@pytest.mark.parametrize("cameras", [{}, {"top": [3, 32, 32]}, {"top": [3, 32, 32], "wrist": [3, 32, 32]}])
def test_policy_shapes_for_0_1_2_cameras(cameras):
    torch.manual_seed(0)
    config = tiny_config(cameras)
    policy = VQBeTPolicy(config)
    B, T, W, A = 2, 2, 3, 2
    tokens = policy.encode_observations(observations(config, B, T))
    assert tokens.shape == (B, T, policy.obs_encoder.token_dim)
    assert policy.encode_observations(observations(config, 5)).shape == (5, policy.obs_encoder.token_dim)
    stage1 = policy.tokenizer_loss(torch.randn(B, W, A))
    assert set(stage1) == {"loss", "recon_l1", "commitment"}
    policy.freeze_tokenizer()
    losses = policy.prior_loss(tokens, torch.randn(B, T, W, A), torch.zeros(B, T, W, dtype=torch.bool))
    assert set(losses) == {"loss", "primary_code_loss", "secondary_code_loss", "offset_l1"}
    losses["loss"].backward()
    assert policy.predict_chunks(tokens.detach()).shape == (B, T, W, A)
    assert policy.predict_chunk(tokens.detach()).shape == (B, W, A)


def test_sequential_code_mode_trains_and_predicts():
    torch.manual_seed(0)
    config = tiny_config(sequential_codes=True)
    policy = VQBeTPolicy(config)
    policy.freeze_tokenizer()
    tokens = policy.encode_observations(observations(config, 2, 2))
    losses = policy.prior_loss(tokens, torch.randn(2, 2, 3, 2), torch.zeros(2, 2, 3, dtype=torch.bool))
    losses["loss"].backward()
    assert policy.heads.code_head.secondary[0].weight.grad.abs().sum() > 0
    assert policy.predict_chunks(tokens.detach()).shape == (2, 2, 3, 2)


def test_code_usage_reports_codes_per_layer_and_pairs():
    policy = VQBeTPolicy(tiny_config())
    usage = policy.code_usage(torch.randn(32, 3, 2))
    assert set(usage) == {"distinct_codes_layer_0", "distinct_codes_layer_1", "distinct_pairs"}
    assert 1 <= usage["distinct_codes_layer_0"] <= 8 and 1 <= usage["distinct_pairs"] <= 32


def test_prior_loss_refuses_an_unfrozen_tokenizer():
    policy = VQBeTPolicy(tiny_config())
    with pytest.raises(RuntimeError, match="freeze_tokenizer"):
        policy.prior_loss(torch.randn(1, 2, policy.obs_encoder.token_dim), torch.randn(1, 2, 3, 2),
                          torch.zeros(1, 2, 3, dtype=torch.bool))


def test_prior_training_never_changes_the_tokenizer():
    torch.manual_seed(0)
    config = tiny_config()
    policy = VQBeTPolicy(config)
    policy.tokenizer_loss(torch.randn(16, 3, 2))
    policy.freeze_tokenizer()
    before = {k: v.clone() for k, v in policy.tokenizer.state_dict().items()}
    opt = torch.optim.AdamW(policy.parameters(), lr=1e-2, weight_decay=0.1)  # even with every parameter
    policy.train()
    for _ in range(3):
        tokens = policy.encode_observations(observations(config, 4, 2))
        loss = policy.prior_loss(tokens, torch.randn(4, 2, 3, 2), torch.zeros(4, 2, 3, dtype=torch.bool))["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    for key, value in policy.tokenizer.state_dict().items():
        assert torch.equal(value, before[key]), key
    assert all(p.grad is None for p in policy.tokenizer.parameters())


def test_offset_l1_uses_sampled_codes_not_ground_truth_codes():
    """Gotcha 1: the code head is forced onto codes that differ from the ground truth; the L1 must be
    computed with the forced (sampled) codes."""
    torch.manual_seed(0)
    config = tiny_config()
    policy = VQBeTPolicy(config)
    policy.freeze_tokenizer()
    chunk = torch.randn(1, 1, 3, 2).expand(2, 2, 3, 2).contiguous()  # every position has the same chunk
    gt = policy.tokenizer.encode_codes(chunk[0, 0])  # (Nq,)
    forced = (gt + 1) % 8
    last = policy.heads.code_head.joint[-1]
    with torch.no_grad():
        last.weight.zero_()
        last.bias.fill_(-1e4)
        last.bias.view(2, 8)[torch.arange(2), forced] = 1e4
    tokens = policy.encode_observations(observations(config, 2, 2)).detach()
    losses = policy.prior_loss(tokens, chunk, torch.zeros(2, 2, 3, dtype=torch.bool))

    features = policy.prior(tokens).reshape(4, -1)
    codes = forced.expand(4, 2)
    expected = policy.tokenizer.decode_codes(codes) + OffsetHead.select(
        policy.heads.offset_head(features), codes).view(4, 3, 2)
    torch.testing.assert_close(losses["offset_l1"], (chunk.reshape(4, 3, 2) - expected).abs().mean())
    with_gt = policy.tokenizer.decode_codes(gt.expand(4, 2)) + OffsetHead.select(
        policy.heads.offset_head(features), gt.expand(4, 2)).view(4, 3, 2)
    assert not torch.allclose(losses["offset_l1"], (chunk.reshape(4, 3, 2) - with_gt).abs().mean())


def test_prior_loss_ignores_padded_steps():
    torch.manual_seed(0)
    config = tiny_config()
    policy = VQBeTPolicy(config)
    policy.freeze_tokenizer()
    tokens = policy.encode_observations(observations(config, 2, 2)).detach()
    actions = torch.randn(2, 2, 3, 2)
    pad = torch.zeros(2, 2, 3, dtype=torch.bool)
    pad[0, 1] = True  # a fully padded chunk
    pad[1, 1, 1:] = True  # a chunk with one real step

    def losses(acts):
        return policy.prior_loss(tokens, acts, pad, generator=torch.Generator().manual_seed(0))

    ref = losses(actions)
    fully = actions.clone()
    fully[0, 1] = 50.0
    for key, value in losses(fully).items():
        torch.testing.assert_close(value, ref[key], msg=key)
    partly = actions.clone()
    partly[1, 1, 1:] = 50.0
    torch.testing.assert_close(losses(partly)["offset_l1"], ref["offset_l1"])


def test_prior_loss_of_an_all_padding_batch_is_zero_and_backpropagates():
    policy = VQBeTPolicy(tiny_config())
    policy.freeze_tokenizer()
    tokens = policy.encode_observations(observations(tiny_config(), 2, 2))
    losses = policy.prior_loss(tokens, torch.randn(2, 2, 3, 2), torch.ones(2, 2, 3, dtype=torch.bool))
    assert all(v.detach().item() == 0.0 for v in losses.values())
    losses["loss"].backward()


def test_predict_chunk_is_the_last_positions_chunk_with_argmax():
    torch.manual_seed(0)
    config = tiny_config(argmax=True)
    policy = VQBeTPolicy(config).eval()
    policy.freeze_tokenizer()
    tokens = policy.encode_observations(observations(config, 3, 2))
    torch.testing.assert_close(policy.predict_chunk(tokens), policy.predict_chunks(tokens)[:, -1])


def test_missing_observation_key_is_named():
    policy = VQBeTPolicy(tiny_config({"top": [3, 32, 32]}))
    with pytest.raises(KeyError, match="observation.images.top"):
        policy.encode_observations({constants.STATE: torch.zeros(1, 2)})


# ---- bimodal toy problem ------------------------------------------------------------------------------
TARGET = 0.8


def bimodal_data(n=256):
    """Same observation for every sample; half the chunks go to +0.8, half to -0.8 (normalized units)."""
    g = torch.Generator().manual_seed(1)
    sign = torch.ones(n)
    sign[n // 2:] = -1
    chunks = sign[:, None, None] * TARGET + 0.05 * torch.randn(n, 2, 2, generator=g)  # (N, W, A)
    actions = torch.stack([chunks, chunks[torch.randperm(n, generator=g)]], dim=1)  # (N, T, W, A)
    obs = {constants.STATE: torch.zeros(n, 2, 1)}
    return chunks, actions, obs


def bimodal_config():
    spec = FeatureSpec(joint_names=["j0"], action_names=["j0", "j1"], n_obs_steps=2, chunk_size=2)
    return VQBeTConfig(
        spec=spec,
        tokenizer=TokenizerConfig(latent_dim=32, hidden_dim=32),
        prior=PriorConfig(n_layer=1, n_head=2, n_embd=16, output_dim=16, dropout=0.0),
        heads=HeadConfig(hidden_dim=32),
        state_hidden_dim=16,
    )


def landing(chunks):
    """Fractions of predicted chunks near +target, near -target, and between (mean over W and A)."""
    m = chunks.mean(dim=(1, 2))
    return (((m - TARGET).abs() < 0.3).float().mean().item(), ((m + TARGET).abs() < 0.3).float().mean().item(),
            (m.abs() < 0.4).float().mean().item())


def test_bimodal_toy_vqbet_samples_both_modes_while_mse_regression_lands_between():
    torch.manual_seed(0)
    chunks, actions, obs = bimodal_data()
    pad = torch.zeros(actions.shape[:3], dtype=torch.bool)
    policy = VQBeTPolicy(bimodal_config()).train()

    # Stage 1: official tokenizer optimiser (Adam 1e-3, wd 1e-4, docs/vqbet.md §2).
    opt = torch.optim.Adam(policy.tokenizer.parameters(), lr=1e-3, weight_decay=1e-4)
    for _ in range(100):
        loss = policy.tokenizer_loss(chunks)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    policy.freeze_tokenizer()

    # Stage 2: the offset head has its own optimiser at the official lr 5.5e-5 (docs/vqbet.md §8); with one
    # ambiguous observation the sampled-code L1 is flat between the modes (docs/vqbet.md §10.1), so a fast offset lr
    # would let Adam's noise walk offsets into the gap.
    offset_params = list(policy.heads.offset_head.parameters())
    others = [p for p in policy.prior_parameters() if all(p is not q for q in offset_params)]
    opt = torch.optim.Adam([{"params": others, "lr": 1e-3}, {"params": offset_params, "lr": 5.5e-5}])
    gen = torch.Generator().manual_seed(2)
    for _ in range(100):
        loss = policy.prior_loss(policy.encode_observations(obs), actions, pad, generator=gen)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    policy.eval()
    tokens = policy.encode_observations({constants.STATE: torch.zeros(400, 2, 1)})
    plus, minus, between = landing(policy.predict_chunk(tokens, generator=torch.Generator().manual_seed(3)))
    assert plus >= 0.25 and minus >= 0.25 and between < 0.05, (plus, minus, between)

    # Baseline: the same encoder + GPT with a linear regression head trained by MSE, same data and steps.
    baseline = VQBeTPolicy(bimodal_config())
    regress = torch.nn.Linear(16, 4)
    params = list(baseline.obs_encoder.parameters()) + list(baseline.prior.parameters()) + list(regress.parameters())
    opt = torch.optim.Adam(params, lr=1e-3)
    for _ in range(100):
        pred = regress(baseline.prior(baseline.encode_observations(obs))).view(actions.shape)
        loss = torch.nn.functional.mse_loss(pred, actions)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        pred = regress(baseline.prior(baseline.encode_observations({constants.STATE: torch.zeros(400, 2, 1)})))
    plus, minus, between = landing(pred[:, -1].view(400, 2, 2))
    assert between > 0.95 and plus == 0 and minus == 0, (plus, minus, between)


def test_default_official_sizes_run_one_training_step_and_prediction():
    """Default config (D 512, GPT 6x6x120 -> 256, 1024-wide heads) with an 84x84 crop of a 96x96 camera."""
    torch.manual_seed(0)
    spec = FeatureSpec(cameras={"top": [3, 96, 96]}, joint_names=["x", "y"], action_names=["x", "y"])
    config = VQBeTConfig(spec=spec, vision=VisionConfig(crop_shape=[84, 84]))
    policy = VQBeTPolicy(config).train()
    B, T, W, A = 2, spec.n_obs_steps, spec.chunk_size, 2
    policy.tokenizer_loss(torch.randn(8, W, A))["loss"].backward()
    policy.freeze_tokenizer()
    tokens = policy.encode_observations(observations(config, B, T))
    policy.prior_loss(tokens, torch.randn(B, T, W, A), torch.zeros(B, T, W, dtype=torch.bool))["loss"].backward()
    policy.eval()
    assert policy.predict_chunk(policy.encode_observations(observations(config, B, T))).shape == (B, W, A)
