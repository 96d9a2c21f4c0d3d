"""The whole system under faults: the embedded runner in this process (so a test can SIGKILL and restart any one of
its processes) and an SSE client that, like a browser's EventSource, reconnects with ``Last-Event-ID``."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
from prodflow_cli.runner import EmbeddedSystem, free_port_block
from prodflow_core.couch.server import free_port
from prodflow_core.events import EVENT_ID_PREFIX

T = TypeVar("T")


@contextlib.contextmanager
def running_system(
    data_dir: Path, env: dict[str, str] | None = None, couch_release: Path | None = None
) -> Iterator[EmbeddedSystem]:
    """Every process of the system on free loopback ports (on CouchDB 3 from ``couch_release``, else PouchDB
    Server); all stopped when the block ends."""
    system = EmbeddedSystem(
        data_dir=data_dir,
        port=free_port_block(),
        couch_port=free_port(),
        extra_env=env or {},
        couch_release=couch_release,
    )
    try:
        system.start()
        yield system
    finally:
        system.stop()


def admin_client(system: EmbeddedSystem, timeout_s: float = 120.0) -> httpx.Client:
    """An HTTP client of the gateway with the system's admin token."""
    token = system.admin_token()
    return httpx.Client(base_url=system.gateway_url, headers={"Authorization": f"Bearer {token}"}, timeout=timeout_s)


def crash(system: EmbeddedSystem, name: str, down_s: float = 1.0) -> float:
    """SIGKILL ``name``, leave it down ``down_s``, start it again; returns the seconds it was away."""
    began = time.monotonic()
    system.kill(name)
    time.sleep(down_s)
    system.restart(name)
    return time.monotonic() - began


def tolerant(call: Callable[[], T]) -> T | None:
    """``call()``, or ``None`` while the system is partly down (transport error, 5xx, bad JSON)."""
    try:
        return call()
    except (httpx.HTTPError, ValueError, KeyError):
        return None


class ResumingEventClient(threading.Thread):
    """Follows ``/api/events`` until stopped; on any break it reconnects with the last ``id:`` it saw."""

    def __init__(self, gateway: str, token: str, max_s: float = 1800.0) -> None:
        super().__init__(daemon=True, name="sse-client")
        self.gateway, self.token, self.max_s = gateway, token, max_s
        self.events: list[dict[str, Any]] = []
        self.last_id: str | None = None
        self.connections = 0
        self.connected = threading.Event()
        self.stopping = threading.Event()

    def run(self) -> None:
        deadline = time.monotonic() + self.max_s
        while not self.stopping.is_set() and time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                self._follow_once()
            self.stopping.wait(0.3)

    def _follow_once(self) -> None:
        headers = {"Authorization": f"Bearer {self.token}"}
        if self.last_id is not None:
            headers["Last-Event-ID"] = self.last_id
        timeout = httpx.Timeout(5.0, read=60.0)
        with (
            httpx.Client(base_url=self.gateway, headers=headers, timeout=timeout) as client,
            client.stream("GET", "/api/events") as resp,
        ):
            if resp.status_code != 200:
                return
            self.connections += 1
            self.connected.set()
            pending: str | None = None
            for line in resp.iter_lines():
                if self.stopping.is_set():
                    return
                if line.startswith("id: "):
                    pending = line[4:]
                elif line.startswith("data: "):
                    self.events.append(json.loads(line[6:]))
                    # Only a whole event moves the resume point: a break mid-event re-reads that event.
                    self.last_id = pending

    def stop(self) -> None:
        self.stopping.set()
        self.join(timeout=70)


def event_ids(couch_url: str) -> set[str]:
    """Ids of every event document in ``prodflow-events`` (straight from CouchDB)."""
    rows = httpx.get(f"{couch_url}/prodflow-events/_all_docs", timeout=120).json()["rows"]
    return {row["id"] for row in rows if row["id"].startswith(EVENT_ID_PREFIX)}
