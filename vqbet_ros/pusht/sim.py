"""PushT's sim loop without ROS, threads or clocks: which episode runs and from where, which target the next step
follows, whether the next step's command is known (lockstep), and the stamp and status of each observation.
Time is an argument; the ROS node (`nodes/pusht_sim_node.py`) owns the clocks, the threads and the messages,
and calls this under its lock.

Stamps are ROS times in seconds: step k of an episode is stamped `episode_start_s + k dt`. A new episode starts
one step after the last instant published, so stamps never repeat; with the node's own clock (`fast`) on the
grid `FAST_CLOCK_START_S + n dt`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from vqbet_ros.pusht.robot import JOINT_NAMES, PushTObservation, PushTRobot
from vqbet_ros.pusht.schedule import TargetSchedule
from vqbet_ros.pusht.wiring import PushTStatus

LOCKSTEP_MODES = ("each_step", "chunk", "off")
# Fast mode's clock starts here, not at 0: a zero stamp means "now" in ROS, so no observation may carry it.
FAST_CLOCK_START_S = 1.0


@dataclass
class SimSnapshot:
    """One observation, its stamp and its status, taken together so that a reset cannot mix them."""

    obs: PushTObservation
    stamp_s: float
    status: PushTStatus  # its stamp fields are left to whoever turns `stamp_s` into a message stamp


class PushTSim:
    """Episodes, commands and lockstep around a `PushTRobot`.

    `lockstep` says when the next step's command is known: `each_step` a command arrived since the last step
    (a policy that decides every step, teleop), `chunk` the scheduled waypoints reach the end of the next step
    (a policy executing chunks open loop), `off` always. `fast`: the caller's clock is the sim's own (episodes
    start on its grid).
    """

    def __init__(self, robot: PushTRobot, lockstep: str = "each_step", fast: bool = False):
        if lockstep not in LOCKSTEP_MODES:
            raise ValueError(f"`lockstep` is {lockstep!r}; expected one of {LOCKSTEP_MODES}")
        self.robot = robot
        self.lockstep = lockstep
        self.fast = fast
        self.schedule = TargetSchedule(len(JOINT_NAMES))
        self.episodes_started = 0
        self.episode = 0  # the number of the episode shown
        self.episode_start_s = 0.0  # ROS time of the current episode's step 0
        self.awaiting_command = False  # the episode's clock has not started: no command since its reset
        self.fresh_command = False  # a command arrived since the last step

    @property
    def now_s(self) -> float:
        """ROS time of the robot's current instant."""
        return self.episode_start_s + self.robot.time_s

    # --- episodes ---
    def start_episode(self, now_s: float, seed: int, initial_state: list[float] = (), count: bool = True) -> str:
        """Reset the robot for the next episode at ROS time `now_s`: from `initial_state` (5 values) if given,
        else from seed `seed` + the number of episodes started. `count`: the episode counts as started (false
        for the one readied at start-up when the node's `first_episode_at_start` is false). Returns what it
        started from."""
        if initial_state:
            self.robot.reset(state=np.asarray(initial_state))
            origin = f"initial_state {list(initial_state)}"
        else:
            self.robot.reset(seed=seed + self.episodes_started)
            origin = f"seed {seed + self.episodes_started}"
        self.episode = self.episodes_started
        if count:
            self.episodes_started += 1
        self.schedule.clear(hold=self.robot.agent_xy)
        self.fresh_command = False
        self.awaiting_command = True
        if self.fast:
            n = math.floor((now_s - FAST_CLOCK_START_S) / self.robot.dt_s + 0.5) + 1
            self.episode_start_s = FAST_CLOCK_START_S + n * self.robot.dt_s
        else:
            self.episode_start_s = now_s
        return f"episode {self.episode} from {origin}"

    def restamp(self, now_s: float) -> None:
        """The robot stands still (no episode under way, or none started): its current instant is `now_s`."""
        self.episode_start_s = now_s - self.robot.time_s

    def wait_a_step(self) -> None:
        """One step of time passes before the episode's first command: the robot shows its initial state one
        step later."""
        self.episode_start_s += self.robot.dt_s

    # --- commands ---
    def hold(self) -> None:
        """Stop and hold where the agent is (an empty trajectory, as for a joint_trajectory_controller)."""
        self.schedule.clear(hold=self.robot.agent_xy)

    def put_chunk(self, times_s: np.ndarray, positions: np.ndarray) -> bool:
        """Waypoints at ROS times `times_s`, (N, 2) positions in `JOINT_NAMES` order; False (refused) when they
        all lie in the past."""
        accepted = self.schedule.set_chunk(np.asarray(times_s) - self.episode_start_s, positions,
                                           now_s=self.robot.time_s)
        if accepted:
            self._command_arrived()
        return accepted

    def put_target(self, target: np.ndarray) -> None:
        """A direct target, held until the next command."""
        self.schedule.set_target(target)
        self._command_arrived()

    def _command_arrived(self) -> None:
        self.fresh_command = True
        self.awaiting_command = False

    def command_known(self) -> bool:
        """The next step's command is known (`lockstep`)."""
        if self.lockstep == "each_step":
            return self.fresh_command
        if self.lockstep == "chunk":
            return self.fresh_command or self.schedule.covers(self.robot.time_s, self.robot.dt_s)
        return True

    # --- stepping ---
    def step(self) -> SimSnapshot:
        """One control step towards the scheduled target."""
        target = self.schedule.target_for_step(self.robot.time_s, self.robot.dt_s)
        self.fresh_command = False
        return self.snapshot(self.robot.step(target))

    def snapshot(self, obs: PushTObservation | None = None) -> SimSnapshot:
        """`obs` (default: what the robot shows now) with its stamp and status."""
        obs = self.robot.observe() if obs is None else obs
        status = PushTStatus(obs.coverage, obs.success, obs.step, self.episode, self.robot.done)
        return SimSnapshot(obs, self.episode_start_s + obs.time_s, status)
