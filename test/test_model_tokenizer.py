"""Residual VQ-VAE tokenizer: quantisation vs brute force, losses, EMA rules, code usage after training."""
import torch
import torch.nn.functional as F

from vqbet_ros.model.config import TokenizerConfig
from vqbet_ros.model.tokenizer import ResidualVQ, ResidualVQVAE


def brute_force_codes(x, codebooks):
    """Per layer, loop over every code and keep the nearest to the residual."""
    residual, codes = x.clone(), []
    for layer in codebooks:
        best = torch.full((x.shape[0],), -1, dtype=torch.long)
        best_d = torch.full((x.shape[0],), float("inf"))
        for j, code in enumerate(layer):
            d = ((residual - code) ** 2).sum(dim=1)
            closer = d < best_d
            best[closer], best_d[closer] = j, d[closer]
        codes.append(best)
        residual = residual - layer[best]
    return torch.stack(codes, dim=1)


def test_residual_vq_codes_match_brute_force_nearest_codes():
    torch.manual_seed(0)
    vq = ResidualVQ(n_layers=3, codebook_size=7, dim=5, decay=0.8, eps=1e-5).eval()
    x = torch.randn(64, 5)
    _, codes, _ = vq(x)
    assert torch.equal(codes, brute_force_codes(x, vq.codebooks))


def test_residual_vq_commitment_is_sum_of_per_layer_mse_and_output_is_sum_of_codes():
    torch.manual_seed(0)
    vq = ResidualVQ(n_layers=2, codebook_size=4, dim=3, decay=0.8, eps=1e-5).eval()
    x = torch.randn(10, 3)
    quantized, codes, commitment = vq(x)
    c0, c1 = vq.codebooks[0][codes[:, 0]], vq.codebooks[1][codes[:, 1]]
    expected = F.mse_loss(x, c0) + F.mse_loss(x - c0, c1)
    torch.testing.assert_close(commitment, expected)
    torch.testing.assert_close(quantized, c0 + c1)
    torch.testing.assert_close(vq.codes_to_latent(codes), c0 + c1)


def test_tokenizer_loss_is_l1_plus_five_times_commitment_and_reaches_encoder_not_codebooks():
    torch.manual_seed(0)
    tok = ResidualVQVAE(TokenizerConfig(latent_dim=8, hidden_dim=8, codebook_size=4), chunk_size=3, action_dim=2)
    out = tok(torch.randn(16, 3, 2))
    torch.testing.assert_close(out["loss"], out["recon_l1"] + 5.0 * out["commitment"])
    out["loss"].backward()
    assert tok.encoder[0].weight.grad is not None and tok.encoder[0].weight.grad.abs().sum() > 0
    assert not any(name.startswith("vq.") for name, _ in tok.named_parameters())  # codebooks are buffers


def test_ema_updates_codebooks_only_in_training_and_not_frozen():
    torch.manual_seed(0)
    tok = ResidualVQVAE(TokenizerConfig(latent_dim=8, hidden_dim=8, codebook_size=4), chunk_size=2, action_dim=2)
    chunks = torch.randn(32, 2, 2)
    before = tok.vq.codebooks.clone()
    tok.eval()(chunks)
    assert torch.equal(tok.vq.codebooks, before)
    tok.train()(chunks)
    assert not torch.equal(tok.vq.codebooks, before)
    tok.freeze()
    frozen = tok.vq.codebooks.clone()
    tok.train()(chunks)
    assert torch.equal(tok.vq.codebooks, frozen)
    assert tok.state_dict()["vq.frozen"].item() is True
    assert not any(p.requires_grad for p in tok.parameters())


def test_ema_update_matches_laplace_smoothed_running_means():
    torch.manual_seed(0)
    vq = ResidualVQ(n_layers=1, codebook_size=3, dim=2, decay=0.8, eps=1e-5).train()
    x = torch.randn(20, 2)
    idx = vq.nearest_codes(x, 0)
    init = vq.codebooks[0].clone()
    vq(x)
    onehot = F.one_hot(idx, 3).float()
    size = 0.2 * onehot.sum(0)
    embed_sum = 0.8 * init + 0.2 * onehot.t() @ x
    smoothed = (size + 1e-5) / (size.sum() + 3e-5) * size.sum()
    torch.testing.assert_close(vq.codebooks[0], embed_sum / smoothed[:, None])


def test_encode_then_decode_codes_matches_eval_forward_reconstruction():
    torch.manual_seed(0)
    tok = ResidualVQVAE(TokenizerConfig(latent_dim=8, hidden_dim=8, codebook_size=4), chunk_size=3, action_dim=2)
    chunks = torch.randn(5, 3, 2)
    codes = tok.encode_codes(chunks)
    assert codes.shape == (5, 2)
    tok.eval()
    out = tok(chunks)
    assert torch.equal(out["codes"], codes)
    recon = tok.decoder(tok.vq.codes_to_latent(codes)).view(5, 3, 2)
    torch.testing.assert_close(tok.decode_codes(codes), recon)


def test_stage1_on_random_actions_uses_at_least_12_of_16_codes_per_layer():
    """Official sizes (D 512, hidden 128, C 16, EMA 0.8, random init, no restarts), official Adam 1e-3."""
    torch.manual_seed(0)
    tok = ResidualVQVAE(TokenizerConfig(), chunk_size=5, action_dim=2).train()
    data = torch.rand(1024, 5, 2) * 2 - 1
    opt = torch.optim.Adam(tok.parameters(), lr=1e-3, weight_decay=1e-4)
    for _ in range(150):
        loss = tok(data[torch.randint(0, 1024, (128,))])["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    usage = tok.code_usage(data)
    assert usage["distinct_codes_layer_0"] >= 12, usage
    assert usage["distinct_codes_layer_1"] >= 12, usage
    assert usage["distinct_pairs"] >= 100, usage


def test_dead_code_restart_option_revives_unused_codes():
    usage = {}
    for threshold in (0.0, 1.0):
        torch.manual_seed(0)
        config = TokenizerConfig(latent_dim=8, hidden_dim=8, codebook_size=16, dead_code_threshold=threshold)
        tok = ResidualVQVAE(config, chunk_size=2, action_dim=2).train()
        data = torch.rand(512, 2, 2) * 2 - 1
        for _ in range(10):
            tok(data)
        usage[threshold] = tok.code_usage(data)["distinct_codes_layer_0"]
    assert (tok.vq.cluster_size >= 1.0).all()  # every code below the threshold was re-seeded
    assert usage[1.0] >= 14 and usage[0.0] < usage[1.0], usage


def test_kmeans_init_option_uses_every_code_after_one_batch():
    torch.manual_seed(0)
    config = TokenizerConfig(latent_dim=8, hidden_dim=8, codebook_size=8, kmeans_init=True)
    tok = ResidualVQVAE(config, chunk_size=2, action_dim=2).train()
    data = torch.rand(512, 2, 2) * 2 - 1
    tok(data)
    assert bool(tok.vq.initted)
    assert tok.code_usage(data)["distinct_codes_layer_0"] == 8


def test_codes_under_bfloat16_autocast_match_float32_codes():
    torch.manual_seed(0)
    tok = ResidualVQVAE(TokenizerConfig(latent_dim=64, hidden_dim=32), chunk_size=5, action_dim=2).eval()
    chunks = torch.rand(256, 5, 2) * 2 - 1
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = tok.encode_codes(chunks)
        assert tok.decode_codes(mixed).dtype == torch.float32
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=False):
        exact = tok.encode_codes(chunks)
    # Only the bf16 encoder output differs; the search itself runs in float32.
    assert (mixed == exact).float().mean() > 0.95
