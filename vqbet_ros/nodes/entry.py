"""Process entry of every node: start rclpy, spin, and shut down cleanly on Ctrl-C, SIGTERM or a finished node.

Works on Humble, Jazzy and Kilted: it uses only rclpy API present in all three (`rclpy.init` as a plain call,
not a context manager, since Humble's and Jazzy's return None; `SignalHandlerOptions`; `rclpy.try_shutdown`).

Why rclpy's own signal handlers are not installed: on SIGINT they shut the context down at once, from their
own thread, while the node still runs. A worker thread that publishes (the policy's control loop, the sim's
step loop, the recorder's savers logging) then fails with "publisher's context is invalid", and the process
may abort. Here a signal only asks the spin loop to stop; then the node is destroyed (each node stops and
joins its threads in `destroy_node`) and only then the context is shut down. A second SIGINT during that
shutdown (launch forwards one to every node when its stdin is not a terminal) changes nothing.
"""
from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from typing import Callable, Iterator, NoReturn

import rclpy
from rclpy.executors import Executor, ExternalShutdownException, SingleThreadedExecutor
from rclpy.lifecycle import TransitionCallbackReturn
from rclpy.logging import get_logger
from rclpy.signals import SignalHandlerOptions

# rclpy's MultiThreadedExecutor re-polls an entity that is ready but not yet taken by its worker thread in a
# loop that holds the GIL, so each callback waits for CPython's GIL switch interval (5 ms by default) before a
# worker may run it. Measured on an idle 2-core machine: a 30 Hz publisher beside the recorder node fell to
# 1.5-17 Hz; with a 0.2 ms interval it kept 30 Hz. Set for every node process by `ros_session`.
SWITCH_INTERVAL_S = 2e-4
# How often the spin loop checks whether it was asked to stop (a signal, or `done()`).
POLL_S = 0.1
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def use_short_switch_interval() -> None:
    """Process-wide: let executor worker threads take the GIL sooner (see `SWITCH_INTERVAL_S`)."""
    if sys.getswitchinterval() > SWITCH_INTERVAL_S:
        sys.setswitchinterval(SWITCH_INTERVAL_S)


@contextlib.contextmanager
def ros_session(args: list[str] | None = None, *, interrupt: bool = False) -> Iterator[threading.Event]:
    """`rclpy.init(args)` with SIGINT/SIGTERM turned into a stop request (the yielded event) or, with
    `interrupt`, into `KeyboardInterrupt` (for a command line blocked reading a terminal). The context is shut
    down on leaving, whatever happened. The handlers stay for the rest of the process: a late second SIGINT
    must not raise while the process ends."""
    use_short_switch_interval()
    stop = threading.Event()
    handler = signal.default_int_handler if interrupt else (lambda signum, frame: stop.set())
    for sig in STOP_SIGNALS:
        signal.signal(sig, handler)
    try:
        rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
        yield stop
    finally:
        rclpy.try_shutdown()


# `autostart` means one thing in every node that has it: a lifecycle node configures and activates itself at
# start-up, so `ros2 run` needs no lifecycle manager (launch files may drive the transitions instead).
AUTOSTART_PARAMETERS = {  # name: (default, description), for a lifecycle node's table
    "autostart": (False, "configure and activate at start-up, without a lifecycle manager (ros2 run)"),
}
# The sims' parameter of their first episode was called `autostart` before; refused with its new name
# (`NodeParameters.refuse_renamed`).
SIM_RENAMED = {"autostart": "`first_episode_at_start` (a sim readies episode 0 at start-up; `autostart` is a "
                            "lifecycle node's configure and activate)"}


def configure_and_activate_when_spun(node) -> None:
    """`autostart` of lifecycle node `node`: configure it, then activate it if that succeeded, from a one-shot
    timer, so both transitions run inside the executor as a lifecycle manager's calls would."""
    def start() -> None:
        node.destroy_timer(timer)
        if node.trigger_configure() == TransitionCallbackReturn.SUCCESS:
            node.trigger_activate()
    timer = node.create_timer(0.0, start)


def run_node(make_node: Callable[[], object], args: list[str] | None = None, *,
             executor: Callable[[], Executor] = SingleThreadedExecutor,
             done: Callable[[object], bool] | None = None,
             failed: Callable[[object], bool] | None = None) -> NoReturn:
    """Create the node, spin it on `executor()` until a signal (or `done(node)`), destroy the node before the
    context goes away, and end the process: exit code 0 on a requested stop or a finished node, 1 when the
    node finished because it gave up (`failed(node)`; it has logged why), 2 on a bad parameter.

    The process ends with `os._exit` once everything is closed. Interpreter finalization after a node that
    imported torch has served a service spins forever on Kilted's rclpy (measured: the policy node, one
    `ros2 service call .../get_state`, SIGINT: the main thread loops in the garbage collector, no Python frame;
    the recorder, without torch, exits). Every node's own resources are released by then (threads joined,
    episodes saved, context shut down), so nothing is lost by skipping it."""
    code = _spin(make_node, args, executor, done, failed)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _spin(make_node, args, executor, done, failed) -> int:
    with ros_session(args) as stop:
        try:
            node = make_node()
        except ValueError as err:  # a parameter the user gave: one line that names it, no traceback
            get_logger("vqbet_ros").error(str(err))
            return 2
        spinner = executor()
        try:
            spinner.add_node(node)
            while not stop.is_set() and rclpy.ok() and not (done is not None and done(node)):
                spinner.spin_once(timeout_sec=POLL_S)
        except ExternalShutdownException:  # the context was shut down by someone else: a normal end too
            pass
        finally:
            spinner.shutdown()
            node.destroy_node()
        return 1 if failed is not None and failed(node) else 0
