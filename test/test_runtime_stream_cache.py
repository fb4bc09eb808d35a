"""StreamCache: latest-not-newer-than lookups with a maximum age, checked against a brute-force search."""
import threading

import numpy as np
import pytest

from vqbet_ros.runtime.stream_cache import StreamCache


def _brute_force(stamps, at_s):
    older = [s for s in stamps if s <= at_s]
    return max(older) if older else None


def test_get_returns_latest_not_newer_than_instant_like_brute_force():
    rng = np.random.default_rng(1)
    stamps = sorted(rng.uniform(0, 1, size=50).tolist())
    cache = StreamCache({"s": 10.0}, depth=100)
    for stamp in rng.permutation(stamps):  # arrival order shuffled: out-of-order puts must still work
        cache.put("s", f"v{stamp}", float(stamp))
    for at_s in np.linspace(-0.1, 1.1, 97):
        expected = _brute_force(stamps, at_s)
        got = cache.get("s", float(at_s))
        if expected is None:
            assert got is None
        else:
            assert got.stamp_s == expected and got.value == f"v{expected}"
            assert got.age_s == pytest.approx(at_s - expected)


def test_get_counts_value_stamped_exactly_at_instant():
    cache = StreamCache({"s": 1.0}, depth=4)
    cache.put("s", "a", 1.0)
    assert cache.get("s", 1.0).value == "a"


def test_depth_keeps_only_newest_values():
    cache = StreamCache({"s": 10.0}, depth=3)
    for k in range(10):
        cache.put("s", k, float(k))
    assert cache.get("s", 6.5) is None  # 6 was dropped; only 7, 8, 9 remain
    assert cache.get("s", 7.5).value == 7


def test_depth_per_stream_bounds_each_stream_separately():
    cache = StreamCache({"fast": 10.0, "slow": 10.0}, depth={"fast": 5, "slow": 1})
    for k in range(10):
        cache.put("fast", k, float(k))
        cache.put("slow", k, float(k))
    assert cache.get("fast", 5.5).value == 5 and cache.get("fast", 4.5) is None
    assert cache.get("slow", 8.5) is None and cache.get("slow", 9.0).value == 9


def test_sample_reports_never_received_stream_by_name():
    cache = StreamCache({"state": 0.1, "cam_front": 0.2})
    cache.put("state", 1, 5.0)
    snap = cache.sample(5.05)
    assert not snap.ok
    assert snap.stale == {"cam_front": "never received"}
    assert "`cam_front`" in snap.describe_stale()
    assert snap.samples["state"].value == 1


def test_sample_marks_value_older_than_max_age_stale_but_keeps_it():
    cache = StreamCache({"state": 0.1})
    cache.put("state", 1, 5.0)
    snap = cache.sample(5.25)
    assert "0.250 s old" in snap.stale["state"]
    assert snap.samples["state"].age_s == pytest.approx(0.25)


def test_sample_at_max_age_boundary_is_fresh():
    cache = StreamCache({"state": 0.5})
    cache.put("state", 1, 5.0)
    assert cache.sample(5.5).ok


def test_sample_reports_only_future_values_as_stale():
    cache = StreamCache({"cam": 1.0})
    cache.put("cam", 1, 10.0)
    snap = cache.sample(9.0)
    assert "newer than" in snap.stale["cam"] and "cam" not in snap.samples


def test_put_refuses_undeclared_stream():
    cache = StreamCache({"a": 1.0})
    with pytest.raises(KeyError, match="`b` was not declared"):
        cache.put("b", 1, 0.0)


@pytest.mark.parametrize("ages, depth, match", [({"a": 0.0}, 1, "max_age_s"), ({"a": 1.0}, 0, "depth")])
def test_constructor_refuses_bad_arguments(ages, depth, match):
    with pytest.raises(ValueError, match=match):
        StreamCache(ages, depth=depth)


def test_clear_forgets_everything():
    cache = StreamCache({"a": 1.0})
    cache.put("a", 1, 0.0)
    cache.clear()
    assert cache.sample(0.0).stale == {"a": "never received"}


def test_concurrent_puts_and_samples_stay_consistent():
    cache = StreamCache({"a": 100.0}, depth=8)

    def writer():
        for k in range(2000):
            cache.put("a", k, float(k))

    thread = threading.Thread(target=writer)
    thread.start()
    while thread.is_alive():
        sample = cache.get("a", 1e9)
        assert sample is None or sample.value == int(sample.stamp_s)
    thread.join()
    assert cache.get("a", 1e9).value == 1999


def test_stamp_stepping_back_beyond_max_age_restarts_the_stream():
    """A clock step back (bag loop, sim reset): the old timeline is dropped, the new value is used at once
    (before, it was inserted as the oldest value and evicted by the newer-stamped ones)."""
    cache = StreamCache({"s": 0.5}, depth=4)
    for k in range(4):
        cache.put("s", f"old{k}", 1000.0 + k * 0.1)
    assert cache.put("s", "new", 100.0) is True
    snap = cache.sample(100.05)
    assert snap.ok and snap.samples["s"].value == "new"
    assert cache.put("s", "late", 99.8) is False  # within max_age: an ordinary late message


def test_stream_stamped_far_ahead_is_stale_naming_it():
    cache = StreamCache({"s": 0.5}, depth=4)
    cache.put("s", "now", 10.0)
    cache.put("s", "future", 910.0)
    snap = cache.sample(10.1)
    assert "stamped 899.900 s ahead" in snap.stale["s"]


def test_past_instant_sampled_late_is_judged_ahead_against_now():
    cache = StreamCache({"s": 0.5}, depth=100)
    for k in range(30):
        cache.put("s", k, 10.0 + k * 0.1)  # up to 12.9
    assert "stamped 2.800 s ahead of t=10.100 s" in cache.sample(10.1).stale["s"]
    snap = cache.sample(10.1, now_s=12.95)  # tick 10.1 sampled late: newer messages are expected
    assert snap.ok and snap.samples["s"].value == 1
    assert "stamped 0.900 s ahead" in cache.sample(10.1, now_s=12.0).stale["s"]
