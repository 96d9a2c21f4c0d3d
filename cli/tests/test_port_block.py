"""The ports ``prodflow up`` listens on: a free block, outside the ports outgoing connections take."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from prodflow_cli.runner import SERVICES, free_port_block


@pytest.mark.skipif(not Path("/proc/sys/net/ipv4/ip_local_port_range").exists(), reason="Linux only")
def test_the_block_is_free_and_below_the_ephemeral_ports() -> None:
    first_ephemeral = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    for _ in range(20):
        base = free_port_block()
        assert base + len(SERVICES) <= first_ephemeral
        for port in range(base, base + len(SERVICES)):
            with socket.socket() as sock:
                sock.bind(("127.0.0.1", port))  # raises if taken
