"""vqbet-record-keys: drive the recorder from a keyboard (for people without a pedal).

    vqbet-record-keys                     # talks to /recorder
    vqbet-record-keys --node /arm/recorder

Keys (single key press, no Enter, when run in a terminal; one key per line when stdin is a pipe):
    s / space   start an episode             (~/start_episode)
    e / enter   stop and save the episode    (~/stop_episode)
    d / x       discard the episode          (~/discard_episode)
    q / Ctrl-C  quit (the recorder keeps running)

Each reply of the recorder (e.g. why a start was refused: which stream is stale) is printed.
"""
from __future__ import annotations

import argparse
import contextlib
import sys
import termios
import tty

from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from std_srvs.srv import Trigger

from vqbet_ros.nodes.entry import ros_session

KEYS = {
    "s": "start_episode", " ": "start_episode",
    "e": "stop_episode", "\r": "stop_episode", "\n": "stop_episode",
    "d": "discard_episode", "x": "discard_episode",
}
QUIT_KEYS = ("q", "\x03", "\x04")  # q, Ctrl-C, Ctrl-D
HELP = "[s/space] start   [e/enter] stop+save   [d/x] discard   [q] quit"


def service_for_key(key: str) -> str | None:
    """The recorder service a key calls, or None for keys that do nothing."""
    return KEYS.get(key.lower() if key.isalpha() else key)


class RecordKeysClient(Node):
    """One Trigger client per recorder service."""

    def __init__(self, recorder: str, **kwargs):
        super().__init__("record_keys", **kwargs)
        recorder = recorder.rstrip("/")
        self.clients_by_service = {
            name: self.create_client(Trigger, f"{recorder}/{name}") for name in sorted(set(KEYS.values()))
        }
        self.recorder = recorder
        self._spinner = SingleThreadedExecutor(context=self.context)
        self._spinner.add_node(self)

    def call(self, service: str, timeout_s: float = 5.0) -> tuple[bool, str]:
        client = self.clients_by_service[service]
        if not client.wait_for_service(timeout_sec=timeout_s):
            return False, (f"`{self.recorder}/{service}` is not available: is the recorder running and active? "
                           "(ros2 lifecycle set <recorder> configure, then activate)")
        future = client.call_async(Trigger.Request())
        self._spinner.spin_until_future_complete(future, timeout_sec=timeout_s)
        if not future.done():
            return False, f"`{self.recorder}/{service}` did not answer within {timeout_s} s"
        result = future.result()
        return result.success, result.message


@contextlib.contextmanager
def _raw_terminal(stream):
    """Single-key reads in a terminal; unchanged for pipes."""
    if not stream.isatty():
        yield False
        return
    old = termios.tcgetattr(stream.fileno())
    try:
        tty.setcbreak(stream.fileno())
        yield True
    finally:
        termios.tcsetattr(stream.fileno(), termios.TCSADRAIN, old)


def _keys(stream, raw: bool):
    """Yield one key at a time (raw terminal) or the first character of each line (pipe)."""
    if raw:
        while True:
            key = stream.read(1)
            if not key:
                return
            yield key
    for line in stream:
        yield line[:1] if line.strip() else "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="vqbet-record-keys", description=__doc__.split("\n\n")[0])
    parser.add_argument("--node", default="/recorder", help="recorder node name (default /recorder)")
    args, ros_args = parser.parse_known_args(argv)
    with ros_session([sys.argv[0], *ros_args], interrupt=True):  # Ctrl-C must end a blocking read
        node = RecordKeysClient(args.node)
        try:
            print(HELP, flush=True)
            with _raw_terminal(sys.stdin) as raw:
                for key in _keys(sys.stdin, raw):
                    if key in QUIT_KEYS:
                        break
                    service = service_for_key(key)
                    if service is None:
                        print(HELP, flush=True)
                        continue
                    ok, message = node.call(service)
                    print(f"{service}: {'ok' if ok else 'REFUSED'}: {message}", flush=True)
        except KeyboardInterrupt:
            pass
        finally:
            node.destroy_node()
    return 0


if __name__ == "__main__":
    sys.exit(main())
