"""The ROS-free policy runtime on tiny real checkpoints: history at fps, per-frame encoding, faults, worker."""

import numpy as np
import pytest
import torch
from policy_helpers import make_checkpoint

from vqbet_ros import constants
from vqbet_ros.config_io import ConfigError, from_dict
from vqbet_ros.model.checkpoint import load_checkpoint
from vqbet_ros.runtime.config import RuntimeConfig
from vqbet_ros.runtime.engine import JOINTS, PolicyRuntime, camera_stream, low_dim_stream
from vqbet_ros.runtime.images import fit_image

FPS = 10.0
DT = 1 / FPS


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    """cameras front+side (32x32), joints, a 3-d low-dim input; argmax codes (deterministic)."""
    root = tmp_path_factory.mktemp("ckpt")
    return load_checkpoint(make_checkpoint(root / "c", cameras=("front", "side"), low_dim={"pose": 3}))


def make_runtime(loaded, **overrides) -> PolicyRuntime:
    return PolicyRuntime(loaded, from_dict(RuntimeConfig, {"device": "cpu", "warmup_steps": 0, **overrides}))


def frame(seed: int, hw=(40, 48)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (*hw, 3), dtype=np.uint8)


def feed(runtime, t: float, seed: int = 0, cameras=("front", "side"), q=(0.1, 0.2), pose=(1.0, 2.0, 3.0)):
    for i, cam in enumerate(cameras):
        runtime.put_image(cam, frame(seed * 10 + i), t)
    runtime.put_joint_state(np.array(q), t)
    runtime.put_low_dim("pose", np.array(pose), t)


def test_runtime_token_equals_policy_encode_observations(loaded):
    runtime = make_runtime(loaded)
    feed(runtime, 0.0, seed=3, q=(0.5, -0.25), pose=(1.0, 0.5, 4.0))
    assert runtime.step(0.01, tick=0).status == "running"
    obs = {
        constants.image_key("front"): torch.from_numpy(fit_image(frame(30), [3, 32, 32]))[None],
        constants.image_key("side"): torch.from_numpy(fit_image(frame(31), [3, 32, 32]))[None],
        constants.STATE: torch.tensor(loaded.normalizer.normalize(constants.STATE, np.array([[0.5, -0.25]]))).float(),
        constants.low_dim_key("pose"): torch.tensor(
            loaded.normalizer.normalize(constants.low_dim_key("pose"), np.array([[1.0, 0.5, 4.0]]))).float(),
    }
    with torch.no_grad():
        expected = loaded.policy.encode_observations(obs)  # (1, Dt)
    torch.testing.assert_close(runtime.history.tokens[0, -1], expected[0])


def test_runtime_history_padded_with_first_frame_after_reset(loaded):
    runtime = make_runtime(loaded)
    feed(runtime, 0.0, seed=1)
    runtime.step(0.01, tick=0)
    tokens = runtime.history.tokens[0]
    assert all(torch.equal(tokens[0], tokens[i]) for i in range(1, len(tokens)))


def test_runtime_chunk_is_timed_from_the_tick(loaded):
    runtime = make_runtime(loaded)
    feed(runtime, 5.0)
    chunk = runtime.step(5.02, tick=0).chunk
    assert chunk.start_stamp_s == 5.02 and chunk.positions.shape == (4, 2)
    np.testing.assert_allclose(chunk.due_times_s, 5.02 + DT * np.arange(1, 5))


@pytest.mark.parametrize("camera_hz, encodes", [(30.0, 20), (5.0, 10)])
def test_runtime_history_advances_at_fps_whatever_the_camera_rate(loaded, camera_hz, encodes):
    """20 ticks in 2 s: 20 history steps whether frames come 3x faster or 2x slower; each frame encoded once."""
    runtime = make_runtime(loaded, image_max_age_s=0.3)
    events = sorted([(k / camera_hz, "cam", k) for k in range(int(2 * camera_hz) + 1)]
                    + [(0.001 + k * DT, "tick", k) for k in range(20)]
                    + [(k * 0.01, "joints", k) for k in range(200)])
    for t, kind, k in events:
        if kind == "cam":
            runtime.put_image("front", frame(k), t)
            runtime.put_image("side", frame(1000 + k), t)
        elif kind == "joints":
            runtime.put_joint_state(np.array([0.0, 0.1]), t)
            runtime.put_low_dim("pose", np.ones(3), t)
        else:
            assert runtime.step(t, tick=k).status == "running"
    assert runtime.history.pushed == 20
    assert runtime.frames_encoded == {"front": encodes, "side": encodes}


def test_runtime_decision_encodes_exactly_one_new_frame_per_camera(loaded):
    runtime = make_runtime(loaded)
    calls = {"n": 0}
    hooks = [enc.backbone.register_forward_hook(lambda *a: calls.__setitem__("n", calls["n"] + 1))
             for enc in loaded.policy.obs_encoder.cameras]
    try:
        for k in range(6):
            feed(runtime, k * DT, seed=k)
            before = calls["n"]
            result = runtime.step(k * DT + 0.01, tick=k)
            assert result.decided and calls["n"] - before == 2  # one backbone forward per camera
    finally:
        for h in hooks:
            h.remove()


def test_runtime_stale_camera_stops_commands_then_recovers(loaded):
    runtime = make_runtime(loaded, image_max_age_s=0.15)
    feed(runtime, 0.0)
    assert runtime.step(0.01, tick=0).command is not None
    runtime.put_joint_state(np.array([0.1, 0.2]), 0.3)
    runtime.put_low_dim("pose", np.ones(3), 0.3)
    stale = runtime.step(0.31, tick=3)
    assert stale.status == "stale" and stale.command is None and stale.chunk is None
    assert "0.310 s old" in stale.problems[camera_stream("front")]
    assert len(runtime.history) == 0
    feed(runtime, 0.35)
    assert runtime.step(0.36, tick=4).status == "running"
    assert runtime.history.pushed == 1  # restarted (padded with this first frame)


def test_runtime_out_of_order_stamp_refused_until_next_in_order(loaded):
    runtime = make_runtime(loaded)
    feed(runtime, 1.0)
    runtime.put_image("front", frame(5), 0.9)
    result = runtime.step(1.01, tick=0)
    assert result.status == "bad_input" and "out-of-order" in result.problems[camera_stream("front")]
    runtime.put_image("front", frame(6), 1.0)
    assert runtime.step(1.02, tick=1).status == "running"


@pytest.mark.parametrize("stream, put, reason", [
    (JOINTS, lambda r: r.put_joint_state(np.array([np.nan, 0.0]), 1.0), "NaN/Inf position for joint(s) ['shoulder']"),
    (JOINTS, lambda r: r.put_joint_state(np.array([0.0]), 1.0), "expected 2 positions"),
    (low_dim_stream("pose"), lambda r: r.put_low_dim("pose", np.array([1.0, np.inf, 0.0]), 1.0), "NaN/Inf"),
    (low_dim_stream("pose"), lambda r: r.put_low_dim("pose", np.ones(7), 1.0), "expected 3 values"),
    (JOINTS, lambda r: r.put_joint_state(np.array([0.0, 1e30]), 1.0),
     "`joint elbow` = 1e+30 is outside what the checkpoint can represent"),
    (low_dim_stream("pose"), lambda r: r.put_low_dim("pose", np.array([1.0, -1e9, 0.0]), 1.0),
     "`pose[1]` = -1e+09 is outside what the checkpoint can represent"),
    (camera_stream("side"), lambda r: r.report_bad_input(camera_stream("side"), "encoding 'yuv422'"), "yuv422"),
])
def test_runtime_bad_input_gives_no_command_naming_it_then_recovers(loaded, stream, put, reason):
    runtime = make_runtime(loaded)
    feed(runtime, 1.0)
    put(runtime)
    result = runtime.step(1.01, tick=0)
    assert result.status == "bad_input" and result.command is None and result.chunk is None
    assert reason in result.problems[stream]
    feed(runtime, 1.05)
    assert runtime.step(1.06, tick=1).status == "running"


def test_runtime_waits_for_inputs_never_received(loaded):
    runtime = make_runtime(loaded)
    runtime.put_joint_state(np.zeros(2), 0.0)
    result = runtime.step(0.01, tick=0)
    assert result.status == "waiting" and result.problems[camera_stream("front")] == "never received"


def test_runtime_non_finite_policy_output_gives_no_command(loaded, monkeypatch):
    runtime = make_runtime(loaded)
    monkeypatch.setattr(runtime, "_predict", lambda: np.full((4, 2), np.nan))
    feed(runtime, 0.0)
    result = runtime.step(0.01, tick=0)
    assert result.status == "bad_input" and result.command is None and "not finite" in result.problems["policy"]


def test_runtime_confirm_stops_a_result_whose_input_was_refused_while_the_tick_ran(loaded):
    """A NaN joint state arriving during the decision stops that tick's chunk and command, naming the stream;
    inputs that only aged meanwhile do not (the chunk is stamped with the tick time its inputs were fresh at)."""
    runtime = make_runtime(loaded)
    feed(runtime, 0.0)
    result = runtime.step(0.01, tick=0)
    assert result.status == "running" and result.command is not None
    assert runtime.confirm(result) is result

    feed(runtime, DT, seed=1)
    result = runtime.step(DT + 0.01, tick=1)
    runtime.put_joint_state(np.array([np.nan, 0.2]), DT + 0.02)  # arrives while the tick runs
    confirmed = runtime.confirm(result)
    assert confirmed.status == "bad_input" and confirmed.chunk is None and confirmed.command is None
    assert "NaN" in confirmed.problems[JOINTS] and confirmed.generation == result.generation


def test_runtime_open_loop_decides_every_chunk_size_ticks(loaded):
    runtime = make_runtime(loaded, execution="open_loop")
    decided, chunks = [], 0
    for k in range(9):
        feed(runtime, k * DT, seed=k)
        result = runtime.step(k * DT + 0.01, tick=k)
        decided.append(result.decided)
        chunks += result.chunk is not None
        assert result.command is not None
    assert [k for k, d in enumerate(decided) if d] == [0, 4, 8] and chunks == 3
    assert runtime.history.pushed == 9  # the history keeps advancing between decisions


def test_runtime_ensemble_publishes_average_of_overlapping_chunks(loaded):
    runtime = make_runtime(loaded)
    raw = []
    original = runtime._predict
    runtime._predict = lambda: raw.append(original()) or raw[-1]
    for k in range(3):
        feed(runtime, k * DT, seed=k)
        result = runtime.step(k * DT + 0.01, tick=k)
    np.testing.assert_allclose(result.command, np.mean([raw[0][2], raw[1][1], raw[2][0]], axis=0))


def test_runtime_step_limit_is_relative_to_measured_joints(loaded):
    runtime = make_runtime(loaded, max_delta_per_step=[1e-3])
    feed(runtime, 0.0, q=(0.3, -0.4))
    chunk = runtime.step(0.01, tick=0).chunk
    assert np.all(np.abs(chunk.positions[0] - [0.3, -0.4]) <= 1e-3 + 1e-12)


def test_runtime_limits_of_wrong_length_refused_naming_joints(loaded):
    with pytest.raises(ConfigError, match="`joint_lower_limits`: the checkpoint commands 2 joints"):
        make_runtime(loaded, joint_lower_limits=[0.0], joint_upper_limits=[1.0])


def test_runtime_config_refuses_bad_max_age():
    with pytest.raises(ConfigError, match="`image_max_age_s`"):
        from_dict(RuntimeConfig, {"image_max_age_s": -0.1})


def test_runtime_config_max_ages_default_to_three_periods_of_the_checkpoint_fps():
    config = from_dict(RuntimeConfig, {"joint_max_age_s": 0.5})
    assert config.max_ages_s(1 / 30) == pytest.approx({"camera": 0.1, "joints": 0.5, "low_dim": 0.1})
    assert config.max_ages_s(0.1)["camera"] == pytest.approx(0.3)


def test_runtime_reset_request_applies_at_next_tick(loaded):
    runtime = make_runtime(loaded)
    for k in range(4):
        feed(runtime, k * DT, seed=k)
        runtime.step(k * DT + 0.01, tick=k)
    runtime.request_reset()
    feed(runtime, 0.4, seed=9)
    runtime.step(0.41, tick=4)
    assert runtime.history.pushed == 1


def test_resolve_device_cuda_without_cuda_is_refused(monkeypatch):
    from vqbet_ros.runtime.engine import resolve_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto").type == "cpu"
    with pytest.raises(ValueError, match="`device` is 'cuda'"):
        resolve_device("cuda")


@pytest.mark.slow
def test_runtime_compiled_matches_eager(loaded):
    """torch.compile path (CUDA graphs with reduce-overhead on a GPU) gives the eager chunk; CPU here."""
    eager, compiled = make_runtime(loaded), make_runtime(loaded, compile_mode="default", warmup_steps=1)
    compiled.warmup()
    for runtime in (eager, compiled):
        for k in range(3):
            feed(runtime, k * DT, seed=k)
            with torch.inference_mode():
                result = runtime.step(k * DT + 0.01, tick=k)
        runtime.result = result
    np.testing.assert_allclose(compiled.result.chunk.positions, eager.result.chunk.positions, atol=1e-4)


def test_runtime_accepts_values_well_outside_training_range_but_representable(loaded):
    runtime = make_runtime(loaded)
    feed(runtime, 0.0, q=(50.0, -40.0), pose=(100.0, -20.0, 0.0))  # joint stats [-1, 2], pose [0, 4]
    assert runtime.step(0.01, tick=0).status == "running"


def test_runtime_stream_stamps_stepping_back_restart_the_stream_not_refused(loaded):
    """A bag loop / sim reset on one publisher: stamps 900 s back are a new timeline, not out-of-order."""
    runtime = make_runtime(loaded)
    feed(runtime, 1000.0)
    assert runtime.step(1000.01, tick=0).status == "running"
    feed(runtime, 100.0)
    result = runtime.step(100.01, tick=0)
    assert result.status == "running", result.problems
    assert runtime.clock_events >= 1 and "stepped back 900.000 s" in runtime.last_clock_event


def test_runtime_recovers_at_once_after_burst_of_future_stamped_messages(loaded):
    runtime = make_runtime(loaded)
    feed(runtime, 10.0)
    for k in range(5):  # a publisher's clock 900 s ahead
        runtime.put_joint_state(np.array([0.1, 0.2]), 910.0 + k * DT)
    result = runtime.step(10.05, tick=0)
    assert result.status == "stale" and "stamped 900" in result.problems[JOINTS]
    assert runtime.input_ages_s(10.05)[JOINTS] == pytest.approx(0.05)  # never negative
    feed(runtime, 10.1)
    assert runtime.step(10.11, tick=1).status == "running"


def test_runtime_node_clock_step_back_clears_inputs_and_history(loaded):
    runtime = make_runtime(loaded)
    feed(runtime, 1000.0)
    assert runtime.step(1000.01, tick=0).status == "running"
    runtime.clock_stepped_back(100.0, by_s=900.0)
    assert runtime.step(100.0, tick=0).status == "waiting"  # old-timeline inputs are gone
    feed(runtime, 100.05)
    assert runtime.step(100.1, tick=1).status == "running"
    assert runtime.history.pushed == 1  # the history restarted on the new timeline
    assert "node clock stepped back 900.000 s" in runtime.last_clock_event


def test_runtime_result_before_reset_or_enable_has_older_generation(loaded):
    runtime = make_runtime(loaded, enable_control=False)
    feed(runtime, 0.0)
    before = runtime.step(0.01, tick=0)
    runtime.request_reset()
    assert before.generation < runtime.generation
    after = runtime.step(0.02, tick=1)
    runtime.set_enabled(True)
    assert after.generation < runtime.generation
    assert runtime.step(0.03, tick=2).generation == runtime.generation
