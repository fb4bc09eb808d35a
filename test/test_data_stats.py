"""compute_stats / aggregate_stats against plain numpy."""
import numpy as np
import pytest

from vqbet_ros import constants
from vqbet_ros.data.stats import STAT_NAMES, aggregate_stats, compute_stats, stats_for_episodes


def test_compute_stats_match_numpy_on_vectors():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(500, 4)).astype(np.float32)
    stats = compute_stats({constants.ACTION: x})[constants.ACTION]
    assert tuple(stats) == STAT_NAMES
    np.testing.assert_allclose(stats["min"], x.min(0))
    np.testing.assert_allclose(stats["max"], x.max(0))
    np.testing.assert_allclose(stats["mean"], x.astype(np.float64).mean(0), rtol=1e-6)
    np.testing.assert_allclose(stats["std"], x.astype(np.float64).std(0), rtol=1e-6)
    np.testing.assert_allclose(stats["q10"], np.quantile(x.astype(np.float64), 0.1, axis=0), rtol=1e-6)
    assert stats["count"].tolist() == [500]
    assert stats["mean"].dtype == np.float32 and stats["count"].dtype == np.int64


def test_compute_stats_give_scalar_features_shape_one():
    stats = compute_stats({"timestamp": np.arange(10, dtype=np.float32)})["timestamp"]
    assert stats["max"].shape == (1,) and stats["max"][0] == 9


def test_compute_stats_of_images_are_per_channel_in_unit_range():
    rng = np.random.default_rng(1)
    frames = rng.integers(0, 256, size=(6, 3, 8, 10), dtype=np.uint8)  # channels first
    stats = compute_stats({constants.image_key("cam"): frames})[constants.image_key("cam")]
    assert stats["mean"].shape == (3, 1, 1)
    expected = frames.transpose(1, 0, 2, 3).reshape(3, -1) / 255.0
    np.testing.assert_allclose(stats["mean"][:, 0, 0], expected.mean(1), rtol=1e-6)
    np.testing.assert_allclose(stats["std"][:, 0, 0], expected.std(1), rtol=1e-5)
    np.testing.assert_allclose(stats["max"][:, 0, 0], expected.max(1))
    channels_last = compute_stats({constants.image_key("cam"): frames.transpose(0, 2, 3, 1)})
    np.testing.assert_allclose(channels_last[constants.image_key("cam")]["mean"], stats["mean"])


def test_aggregate_stats_equal_stats_of_concatenation():
    rng = np.random.default_rng(2)
    a = rng.normal(size=(30, 3)).astype(np.float32)
    b = (rng.normal(size=(70, 3)) * 3 + 5).astype(np.float32)
    merged = aggregate_stats([compute_stats({"x": a}), compute_stats({"x": b})])["x"]
    direct = compute_stats({"x": np.concatenate([a, b])})["x"]
    for name in ("min", "max", "mean", "std"):
        np.testing.assert_allclose(merged[name], direct[name], rtol=1e-5)
    assert merged["count"].tolist() == [100]
    q_a, q_b = compute_stats({"x": a})["x"]["q50"], compute_stats({"x": b})["x"]["q50"]
    np.testing.assert_allclose(merged["q50"], 0.3 * q_a + 0.7 * q_b, rtol=1e-5)


def test_stats_for_episodes_use_only_the_chosen_rows():
    x = np.arange(10, dtype=np.float32)[:, None]
    stats = stats_for_episodes({"x": x}, [(0, 4), (4, 10)], [1])["x"]
    assert stats["min"].tolist() == [4] and stats["max"].tolist() == [9]
    assert stats["count"].tolist() == [6]


def test_stats_for_episodes_refuse_unknown_episode():
    with pytest.raises(IndexError, match="episode 5 is out of range"):
        stats_for_episodes({"x": np.zeros((4, 1))}, [(0, 4)], [5])
