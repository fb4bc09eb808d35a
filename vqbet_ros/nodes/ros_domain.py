"""A ROS domain that no process on this machine is using, for programs that run a sim and a policy in one
process (`vqbet-demo`) and for the tests.

They publish joint commands, trajectories and `/clock` on the topics a real arm uses. On a domain that a
robot or a recording already uses, they would drive it or corrupt its data: a test run beside a recording on
domain 31 once fed the recorder a second sim's clock (94 frames of one demo stale). So they do not take
ROS_DOMAIN_ID from the shell (where a user's robot runs) and skip every domain in use here. A domain is in
use when the RTPS well-known unicast port of its first participant, 7410 + 250 x domain (the DDS spec's
default port mapping, which Fast DDS and Cyclone DDS follow), or that of one of the next participants, is
taken. With discovery kept on this host (ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST) a robot elsewhere on the
network is not reached either.
"""
from __future__ import annotations

import random
import socket

MAX_DOMAIN = 232  # the largest domain id the RTPS port mapping leaves room for
PARTICIPANTS_CHECKED = 10  # the first participant may have left while later ones of the domain still run


def participant_port(domain: int, participant: int) -> int:
    """The RTPS well-known metatraffic unicast port of participant `participant` of `domain`."""
    return 7410 + 250 * domain + 2 * participant


def _port_taken(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.bind(("", port))
        except OSError:
            return True
    return False


def domain_in_use(domain: int) -> bool:
    """Whether a DDS participant on this machine holds one of `domain`'s first participants' unicast ports."""
    return any(_port_taken(participant_port(domain, k)) for k in range(PARTICIPANTS_CHECKED))


def free_ros_domain(candidates: list[int] | None = None) -> int:
    """The first of `candidates` (default: 1-100 in random order, so two programs starting together rarely
    pick the same) that no participant on this machine uses."""
    candidates = candidates if candidates is not None else random.sample(range(1, 101), 100)
    for domain in candidates:
        if not domain_in_use(domain):
            return domain
    raise RuntimeError(f"every ROS domain of {sorted(candidates)[0]}..{sorted(candidates)[-1]} is in use on "
                       "this machine; choose a free one")
