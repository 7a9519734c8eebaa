"""Loopback ports for servers a test starts at an address it chose (and may restart there).

A port the kernel hands out for ``bind(0)`` comes from its ephemeral range, which is also where
every outgoing connection's source port comes from: between the test's pick and its server's
bind, or between a stop and the restart, another test worker's connection can take it. These
ports come from just below that range, which the kernel never hands out by itself, picked at
random (from the system's entropy, not the seeded ``random``) and checked free.
"""

from __future__ import annotations

import random
import socket
from pathlib import Path

_PICK = random.SystemRandom()
_SPAN = 12000


def _ephemeral_start() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default


def free_port(count: int = 1) -> int:
    """A port P on 127.0.0.1 such that nothing listens on P … P + count - 1 now and no outgoing
    connection will take them (``count`` consecutive ports, for servers that take one each)."""
    high = _ephemeral_start()
    low = max(1024, high - _SPAN)
    for _ in range(200):
        port = _PICK.randrange(low, high - count + 1)
        if all(_free(p) for p in range(port, port + count)):
            return port
    raise RuntimeError(f"no {count} free consecutive ports found in {low}-{high - 1}")


def _free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False  # a service or another test has it
        return True
