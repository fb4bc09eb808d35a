"""PushT's sim loop without ROS, stepped by hand: episode stamps, lockstep, idle time."""
import numpy as np
import pytest

pytest.importorskip("gym_pusht")

from vqbet_ros.pusht.robot import PushTRobot  # noqa: E402
from vqbet_ros.pusht.sim import PushTSim  # noqa: E402
from vqbet_ros.pusht.wiring import STATUS_FIELDS, PushTStatus  # noqa: E402


@pytest.fixture(scope="module")
def robot():
    return PushTRobot(render_camera=False)


def test_pusht_sim_fast_episodes_start_on_the_clock_grid_one_step_after_now(robot):
    sim = PushTSim(robot, fast=True)
    assert sim.start_episode(now_s=1.0, seed=7) == "episode 0 from seed 7"
    assert sim.episode_start_s == pytest.approx(1.1) and sim.awaiting_command
    assert sim.snapshot().stamp_s == sim.episode_start_s and sim.snapshot().status.episode == 0
    sim.put_target(robot.agent_xy + 5.0)
    stepped = sim.step()
    assert stepped.stamp_s == pytest.approx(1.2) and stepped.status.step == 1 and not stepped.status.done
    assert sim.start_episode(now_s=1.2 + 1e-6, seed=7) == "episode 1 from seed 8"  # seed + episodes started
    assert sim.episode_start_s == pytest.approx(1.3) and sim.snapshot().status.step == 0


def test_pusht_sim_lockstep_knows_the_next_command_per_mode(robot):
    each = PushTSim(robot, "each_step")
    each.start_episode(now_s=0.0, seed=0)
    assert not each.command_known()
    each.put_target(robot.agent_xy)
    assert each.command_known() and not each.awaiting_command
    each.step()
    assert not each.command_known()

    chunk = PushTSim(robot, "chunk")
    chunk.start_episode(now_s=10.0, seed=0)  # real time: the episode starts now
    times = 10.0 + 0.1 * np.arange(1, 4)
    assert chunk.put_chunk(times, np.tile(robot.agent_xy, (3, 1)))
    for _ in range(3):  # the chunk covers three steps, then the next is unknown
        assert chunk.command_known()
        chunk.step()
    assert not chunk.command_known()
    assert not chunk.put_chunk(times - 1.0, np.tile(robot.agent_xy, (3, 1)))  # all in the past: refused
    assert not chunk.command_known()

    assert PushTSim(robot, "off").command_known()


def test_pusht_sim_idle_time_moves_the_stamps_not_the_robot(robot):
    sim = PushTSim(robot)
    sim.start_episode(now_s=3.0, seed=0, initial_state=[200.0, 200.0, 300.0, 300.0, 0.5])
    sim.restamp(5.0)
    assert sim.snapshot().stamp_s == 5.0
    sim.wait_a_step()
    snapshot = sim.snapshot()
    assert snapshot.stamp_s == pytest.approx(5.1) and snapshot.status.step == 0
    np.testing.assert_allclose(snapshot.obs.agent_xy, [200.0, 200.0])


def test_pusht_sim_refuses_an_unknown_lockstep(robot):
    with pytest.raises(ValueError, match="`lockstep` is 'sometimes'"):
        PushTSim(robot, "sometimes")


def test_pusht_status_goes_to_message_values_in_the_field_order_and_back():
    status = PushTStatus(coverage=0.97, success=True, step=12, episode=3, done=False, stamp_sec=5,
                         stamp_nanosec=100_000_000)
    values = status.to_values()
    assert values == [0.97, 1.0, 12.0, 3.0, 0.0, 5.0, 1e8] and len(values) == len(STATUS_FIELDS)
    assert STATUS_FIELDS[:5] == ("coverage", "success", "step", "episode", "done")
    assert PushTStatus.from_values(values) == status
