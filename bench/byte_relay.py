"""The floor of any hop on these cores, for ``bench_gateway.py``: bytes moved by the kernel, no HTTP parsed.

Each accepted connection gets a connection of its own to ``BYTE_RELAY_UPSTREAM`` and two threads, one per
direction, that move the bytes with ``os.splice`` through a pipe: they never reach Python, and no event loop
runs. What is left of a hop is the machine's: the second pair of socket round trips and waking the relay's
thread, often on the other core. ``raw_relay.py`` adds HTTP parsing in asyncio; ``pass_through_proxy.py`` adds
uvicorn and ASGI. An instrument, not a proxy to run.

Run: BYTE_RELAY_UPSTREAM=http://127.0.0.1:PORT python bench/byte_relay.py PORT
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
import threading
from urllib.parse import urlsplit

_PIPE_BYTES = 1 << 16


def _pump(source: socket.socket, sink: socket.socket) -> None:
    """Move bytes from ``source`` to ``sink`` until ``source`` ends, then end ``sink``'s sending side."""
    read_end, write_end = os.pipe()
    try:
        while (taken := os.splice(source.fileno(), write_end, _PIPE_BYTES)) > 0:
            while taken:
                taken -= os.splice(read_end, sink.fileno(), taken)
    except OSError:
        pass  # either side went away: the connection is over
    finally:
        os.close(read_end)
        os.close(write_end)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)


def _relay(caller: socket.socket, upstream: tuple[str, int]) -> None:
    with caller, socket.create_connection(upstream) as service:
        for end in (caller, service):
            end.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        back = threading.Thread(target=_pump, args=(service, caller), daemon=True)
        back.start()
        _pump(caller, service)
        back.join()


def main(port: int, upstream_url: str) -> None:
    parts = urlsplit(upstream_url)
    upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
    with socket.create_server(("127.0.0.1", port)) as listener:
        while True:
            caller, _ = listener.accept()
            threading.Thread(target=_relay, args=(caller, upstream), daemon=True).start()


if __name__ == "__main__":
    main(int(sys.argv[1]), os.environ["BYTE_RELAY_UPSTREAM"])
