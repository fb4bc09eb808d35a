"""policy_node under operator and clock faults, and its refusals at configure, with real rclpy.

The harness (`Rig`) is the one of `test_nodes_policy.py`: a policy node plus a peer node that publishes the
inputs and records every output in arrival order.
"""
import math
import random

import pytest
from policy_helpers import make_checkpoint
from test_nodes_policy import Rig, image_msg, joint_msg, to_time

rclpy = pytest.importorskip("rclpy")
from lifecycle_msgs.msg import State  # noqa: E402
from rclpy.lifecycle import TransitionCallbackReturn  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from rosgraph_msgs.msg import Clock  # noqa: E402
from std_srvs.srv import SetBool, Trigger  # noqa: E402

from vqbet_ros.nodes.policy_node import PolicyNode  # noqa: E402


def stamp_s(msg) -> float:
    return msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9


class Caller:
    """Persistent service clients of the peer (a fresh client per call costs a discovery round)."""

    def __init__(self, rig):
        self.rig = rig
        self.clients = {name: rig.peer.create_client(srv, f"/policy_node/{name}")
                        for name, srv in (("enable", SetBool), ("reset", Trigger))}
        for client in self.clients.values():
            assert client.wait_for_service(timeout_sec=10.0)

    def __call__(self, name, request):
        future = self.clients[name].call_async(request)
        assert self.rig.spin(10.0, until=future.done), f"~/{name} did not answer"
        assert future.result().success


def check_nothing_older_follows_a_hold(trajectories, requests_s, cushion_s):
    """k-th hold <-> k-th request (a disable or a reset); every chunk after the k-th hold must come from a
    tick that started after the operator's next action (`requests_s[k]`, minus `cushion_s` of scheduling)."""
    holds = [i for i, m in enumerate(trajectories) if len(m.points) == 0]
    assert len(holds) == len(requests_s), f"{len(holds)} holds for {len(requests_s)} disables/resets"
    late = []
    for k, start in enumerate(holds):
        end = holds[k + 1] if k + 1 < len(holds) else len(trajectories)
        late += [(k, stamp_s(m) - requests_s[k]) for m in trajectories[start + 1:end]
                 if stamp_s(m) < requests_s[k] - cushion_s]
    assert not late, f"chunks computed before the operator's action published after its hold: {late[:5]}"


def test_policy_node_disable_reset_deactivate_nothing_follows_their_hold(ros_context, tmp_path):
    """~/enable toggled quickly at random phases of a 50 Hz loop, then ~/reset, then deactivate: once a hold
    is out, no chunk computed before the operator's action follows it on the controller's topic."""
    ckpt = make_checkpoint(tmp_path / "fast", fps=50.0, chunk_size=20, n_obs_steps=2)
    rig = Rig(ros_context, ckpt, image_max_age_s=2.0, joint_max_age_s=2.0, publish_commands=True)
    rng = random.Random(0)
    try:
        rig.start()
        call = Caller(rig)
        now_s = lambda: rig.peer.get_clock().now().nanoseconds * 1e-9  # noqa: E731
        rig.clear()
        enables_s = []
        for _ in range(60):
            call("enable", SetBool.Request(data=False))
            rig.spin(0.04)  # a chunk racing the disable would be stamped before this pause
            enables_s.append(now_s())
            call("enable", SetBool.Request(data=True))
            rig.spin(rng.uniform(0.0, 0.06))  # land the next disable at a random phase of the tick
        rig.spin(0.3)
        check_nothing_older_follows_a_hold(list(rig.received["trajectory"]), enables_s, cushion_s=0.02)

        rig.clear()
        resets_s = []
        for _ in range(10):
            rig.spin(rng.uniform(0.02, 0.1))
            resets_s.append(now_s())
            call("reset", Trigger.Request())
        rig.spin(0.3)
        check_nothing_older_follows_a_hold(list(rig.received["trajectory"]), resets_s, cushion_s=0.02)

        rig.clear()
        assert rig.node.trigger_deactivate() == TransitionCallbackReturn.SUCCESS
        rig.spin(0.5)
        trajectories = rig.received["trajectory"]
        assert trajectories and len(trajectories[-1].points) == 0, "deactivate: the hold is not the last message"
        assert sum(len(m.points) == 0 for m in trajectories) == 1
    finally:
        rig.close()


def test_policy_node_recovers_within_periods_after_sim_clock_steps_back(ros_context, tmp_path):
    """/clock jumps back 900 s (a sim reset, `ros2 bag play --loop`): caches are cleared, chunks resume on the
    new timeline at once instead of after 900 s, and the diagnostics say what happened."""
    ckpt = make_checkpoint(tmp_path / "ckpt")
    rig = Rig(ros_context, ckpt, use_sim_time=True)
    clock_pub = rig.peer.create_publisher(Clock, "/clock", 10)
    sim = {"offset_ns": 1_000_000_000_000}  # sim time = wall time since start + offset

    t0_ns = rig.peer.get_clock().now().nanoseconds

    def sim_time():
        return rclpy.time.Time(nanoseconds=rig.peer.get_clock().now().nanoseconds - t0_ns + sim["offset_ns"])

    def inputs(k):
        stamp = sim_time().to_msg()
        clock_pub.publish(Clock(clock=stamp))
        rig.image_pub.publish(image_msg(stamp))
        rig.joint_pub.publish(joint_msg(stamp))

    rig.inputs = inputs
    try:
        rig.start(seconds=20.0)
        rig.spin(0.5)
        before = stamp_s(rig.received["preview"][-1])
        sim["offset_ns"] -= 900_000_000_000
        jumped = sim_time().nanoseconds * 1e-9
        rig.clear()
        assert rig.spin(5.0, until=lambda: any(stamp_s(m) < before - 800 for m in rig.received["preview"])), \
            "no chunk on the new timeline within 5 s of wall time"
        first = min(stamp_s(m) for m in rig.received["preview"] if stamp_s(m) < before - 800)
        # A few periods when the machine is idle; the bound leaves room for a loaded test machine (the
        # failure this guards against is staying stale for the size of the jump, 900 s).
        assert first - jumped < 3.0, f"recovery took {first - jumped:.2f} s of sim time"
        rig.spin(0.3)
        values = {kv.key: kv.value for kv in rig.last_status().values}
        assert int(values["clock_steps_back"]) >= 1
        assert "stepped back" in values["last_clock_step_back"]
        assert values["state"] == "running"
    finally:
        rig.close()


def configure_errors(context, capfd, overrides):
    """Configure a policy node with `overrides`; returns (transition result, state, its ERROR lines)."""
    node = PolicyNode(context=context, parameter_overrides=[Parameter(k, value=v) for k, v in overrides.items()])
    try:
        capfd.readouterr()
        result = node.trigger_configure()
        state = node._state_machine.current_state[0]
    finally:
        node.destroy_node()
    err = capfd.readouterr().err
    return result, state, [line for line in err.splitlines() if "[ERROR]" in line and "[policy_node]" in line]


def bad_config_checkpoint(tmp_path, key, value):
    import yaml

    ckpt = make_checkpoint(tmp_path / "ckpt")
    config = yaml.safe_load((ckpt / "config.yaml").read_text())
    section, field = key.split(".")
    config[section][field] = value
    (ckpt / "config.yaml").write_text(yaml.safe_dump(config))
    return ckpt


CONFIGURE_REFUSALS = {  # case -> (overrides beyond the checkpoint, text the one error line must hold)
    "zero_diagnostics_period": ({"diagnostics_period_s": 0.0}, "`diagnostics_period_s`"),
    "invalid_topic": ({"trajectory_topic": "/arm controller/cmd"}, "`trajectory_topic`"),
    "invalid_camera_topic": ({"cameras.front.topic": "front image"}, "`cameras.front.topic`"),
    "string_for_float": ({"joint_max_age_s": "fast"}, "`joint_max_age_s`"),
    "duplicate_joint_map": ({"joint_name_map": ["shoulder:j1", "shoulder:j2"]}, "`joint_name_map`"),
    "two_joints_one_robot_joint": ({"joint_name_map": ["shoulder:j1", "elbow:j1"]}, "`joint_name_map`"),
    "infinite_lower_limit": ({"joint_lower_limits": [math.inf, 0.0], "joint_upper_limits": [math.inf, 1.0]},
                             "`joint_lower_limits`"),
    "wrong_indices_count": ({"low_dim.pose.indices": [0, 1]}, "`low_dim.pose.indices`"),
    "checkpoint_is_a_file": ({}, "is a file"),
    "nan_fps": ({}, "`spec.fps`"),
    "inf_temperature": ({}, "`heads.temperature`"),
    "zero_heads": ({}, "`prior.n_head`"),
}


@pytest.mark.parametrize("case", list(CONFIGURE_REFUSALS))
def test_policy_node_configure_refusal_logs_one_line_naming_the_parameter(ros_context, tmp_path, capfd, case):
    overrides, expected = CONFIGURE_REFUSALS[case]
    if case == "wrong_indices_count":
        ckpt = make_checkpoint(tmp_path / "ckpt", low_dim={"pose": 3})
    elif case in ("nan_fps", "inf_temperature", "zero_heads"):
        key, value = {"nan_fps": ("spec.fps", math.nan), "inf_temperature": ("heads.temperature", math.inf),
                      "zero_heads": ("prior.n_head", 0)}[case]
        ckpt = bad_config_checkpoint(tmp_path, key, value)
    else:
        ckpt = make_checkpoint(tmp_path / "ckpt")
    if case == "checkpoint_is_a_file":
        ckpt = ckpt / "config.yaml"
    params = {"checkpoint": str(ckpt), "device": "cpu", "warmup_steps": 0, "cpu_threads": 1, **overrides}
    result, state, errors = configure_errors(ros_context, capfd, params)
    assert result == TransitionCallbackReturn.FAILURE
    assert state == State.PRIMARY_STATE_UNCONFIGURED
    assert len(errors) == 1, errors
    assert expected in errors[0], errors[0]


def test_policy_node_accepts_integers_for_float_parameters(ros_context, tmp_path, capfd):
    """`joint_max_age_s:=1` and integer joint limits, as a shell or a YAML file writes them."""
    ckpt = make_checkpoint(tmp_path / "ckpt")
    params = {"checkpoint": str(ckpt), "device": "cpu", "warmup_steps": 0, "cpu_threads": 1,
              "joint_max_age_s": 1, "image_max_age_s": 1, "diagnostics_period_s": 2,
              "joint_lower_limits": [-5, -5], "joint_upper_limits": [5, 5], "max_delta_per_step": [1]}
    result, _, errors = configure_errors(ros_context, capfd, params)
    assert result == TransitionCallbackReturn.SUCCESS, errors


def test_policy_node_enable_answers_while_camera_sends_decompression_bombs(ros_context, tmp_path):
    """A small PNG that decodes to 6000x6000 is refused from its header (named in the diagnostics) instead of
    being decoded on the executor thread; ~/enable keeps answering quickly."""
    import time

    from sensor_msgs.msg import CompressedImage

    from test_nodes_msg_convert import png_bomb

    ckpt = make_checkpoint(tmp_path / "ckpt")
    rig = Rig(ros_context, ckpt, **{"cameras.front.compressed": True, "cameras.front.topic": "/front/compressed"})
    pub = rig.peer.create_publisher(CompressedImage, "/front/compressed", 10)
    bomb = png_bomb(6000, 6000)

    def inputs(k):
        stamp = to_time(rig.peer)
        msg = CompressedImage(format="png", data=bomb)
        msg.header.stamp = stamp
        pub.publish(msg)
        rig.joint_pub.publish(joint_msg(stamp))

    rig.inputs = inputs
    try:
        assert rig.node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        assert rig.node.trigger_activate() == TransitionCallbackReturn.SUCCESS
        rig.spin(1.0)
        call = Caller(rig)
        t0 = time.monotonic()
        call("enable", SetBool.Request(data=False))
        assert time.monotonic() - t0 < 1.0
        rig.spin(0.3)
        assert "6000x6000" in rig.last_status().message
        assert rig.received["preview"] == []
    finally:
        rig.close()
