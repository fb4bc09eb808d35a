"""Which ROS domain the tests use: one that no process on this machine is using.

The tests publish joint commands, trajectories and `/clock`. On a domain that a robot or a recording already
uses, they would drive it and corrupt its data: a test run beside a recording on domain 31 once fed the
recorder a second sim's clock (94 frames of one demo stale). So the tests never take ROS_DOMAIN_ID from the
shell (where a user's robot runs) and skip every domain in use here. A domain is in use when the RTPS
well-known unicast port of its first participant, 7410 + 250 x domain (the DDS spec's default port mapping,
which Fast DDS and Cyclone DDS follow), is taken. Discovery stays on this host (ROS_AUTOMATIC_DISCOVERY_RANGE),
so a robot elsewhere on the network is never reached either.
"""
from __future__ import annotations

import socket


def first_participant_port(domain: int) -> int:
    return 7410 + 250 * domain


def domain_in_use(domain: int) -> bool:
    """Whether a DDS participant on this machine holds `domain`'s first unicast port."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.bind(("", first_participant_port(domain)))
        except OSError:
            return True
    return False


def free_ros_domain(candidates: list[int]) -> int:
    """The first of `candidates` that no participant on this machine uses."""
    for domain in candidates:
        if not domain_in_use(domain):
            return domain
    raise RuntimeError(f"every ROS domain of {candidates[0]}..{candidates[-1]} is in use on this machine; "
                       "set VQBET_TEST_ROS_DOMAIN_ID to a free one")
