"""The traffic of ``bench/load.py``: the request mix, the open-loop timetable of a phase, and what it measured.

The generator shares the machine's two cores with the system it measures, so its own cost per request counts:
it sends with aiohttp (its C parser; one session, no per-connection scan), where httpx cost ~3.6 ms of the
generator's CPU per request at 300 req/s (39 % of a core).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from types import TracebackType
from urllib.parse import urlsplit

import aiohttp
import orjson
from figures import nearest_rank

LOOPBACK = "127.0.0.1"
LATE_S = 0.05
REQUEST_TIMEOUT_S = 30.0
STATUSES = ("running", "completed", "waiting", "submitted")
KINDS = ("summary", "jobs", "jobs?status", "jobs page", "events (TTFB)")
_STREAM_TIMEOUT = aiohttp.ClientTimeout(total=None, sock_connect=5.0, sock_read=REQUEST_TIMEOUT_S)


def check_loopback(url: str) -> None:
    """Refuse to send anywhere but loopback."""
    host = urlsplit(url).hostname
    if host != LOOPBACK:
        raise SystemExit(f"refusing to send to {host!r}: only {LOOPBACK} is allowed")


class TrafficClient:
    """The generator's session to the gateway (loopback only), with the caller's bearer token, up to ``pool``
    connections. Idle connections are dropped after 2 s, before uvicorn closes its side (5 s): a request sent on a
    connection the server was closing would fail."""

    def __init__(self, base_url: str, token: str, *, pool: int) -> None:
        check_loopback(base_url)
        self._base_url = base_url
        self._token = token
        self._pool = pool
        self._session: aiohttp.ClientSession | None = None

    @property
    def session(self) -> aiohttp.ClientSession:
        """The open session (paths are relative to the base URL, so every request stays on loopback)."""
        if self._session is None:
            raise RuntimeError("TrafficClient used outside 'async with'")
        return self._session

    async def __aenter__(self) -> TrafficClient:
        self._session = aiohttp.ClientSession(
            self._base_url,
            headers={"Authorization": f"Bearer {self._token}"},
            connector=aiohttp.TCPConnector(limit=self._pool, keepalive_timeout=2.0),
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=5.0, sock_read=REQUEST_TIMEOUT_S),
        )
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.session.close()


@dataclass
class KindStats:
    """What one kind of request did in one phase."""

    sent: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)

    def percentile(self, q: float) -> float:
        return nearest_rank(self.latencies_ms, q / 100)


@dataclass
class Phase:
    """One phase of the generator: stats per kind, and how often it could not keep to its timetable."""

    name: str
    rate: float
    duration_s: float
    kinds: dict[str, KindStats] = field(default_factory=lambda: {kind: KindStats() for kind in KINDS})
    skipped: int = 0
    late: int = 0
    events_seen: int = 0
    elapsed_s: float = 0.0
    cpu_s: float = 0.0
    details: Counter[str] = field(default_factory=Counter)

    @property
    def errors(self) -> int:
        return sum(sum(stats.errors.values()) for stats in self.kinds.values())


class Mix:
    """Chooses the next request: kind and path (next pages come from cursors seen in earlier answers)."""

    def __init__(self, label: str, seed: int) -> None:
        self.label = label
        self.rng = random.Random(seed)
        self.cursors: deque[dict[str, str]] = deque(maxlen=200)
        """The query of a listing with the cursor of its next page (a cursor belongs to its own listing)."""

    def next(self) -> tuple[str, str, dict[str, str]]:
        roll = self.rng.random()
        base = {"label": self.label, "limit": "50"}
        if roll < 0.35:
            return "summary", f"/api/labels/{self.label}/summary", {}
        if roll < 0.65:
            return "jobs", "/api/jobs", base
        if roll < 0.85 or not self.cursors:
            return "jobs?status", "/api/jobs", {**base, "status": self.rng.choice(STATUSES)}
        return "jobs page", "/api/jobs", self.cursors.popleft()


def _error_name(exc: BaseException) -> str:
    return f"transport:{type(exc).__name__}"


async def _one(client: TrafficClient, phase: Phase, mix: Mix, kind: str, path: str, params: dict[str, str]) -> None:
    stats = phase.kinds[kind]
    stats.sent += 1
    start = time.perf_counter()
    try:
        async with client.session.get(path, params=params) as response:
            body = await response.read()
    except (aiohttp.ClientError, TimeoutError) as exc:
        stats.errors[_error_name(exc)] += 1
        return
    stats.latencies_ms.append((time.perf_counter() - start) * 1000)
    if not 200 <= response.status < 300:
        stats.errors[str(response.status)] += 1
        with contextlib.suppress(ValueError, AttributeError):
            phase.details[f"{response.status} {orjson.loads(body).get('detail')}"] += 1
        return
    if kind != "summary":
        cursor = orjson.loads(body).get("next")
        if cursor and len(mix.cursors) < 50:
            mix.cursors.append({**params, "cursor": str(cursor)})


async def _sse_client(client: TrafficClient, phase: Phase, stop_at: float, hold_s: float) -> None:
    """Connect, read ``hold_s``, disconnect, reconnect from the last id seen, until ``stop_at``."""
    stats = phase.kinds["events (TTFB)"]
    last_id: str | None = None
    while time.monotonic() < stop_at:
        headers = {"Last-Event-ID": last_id} if last_id else {}
        stats.sent += 1
        start = time.perf_counter()
        try:
            async with client.session.get("/api/events", headers=headers, timeout=_STREAM_TIMEOUT) as response:
                if response.status != 200:
                    await response.read()
                    stats.errors[str(response.status)] += 1
                    await asyncio.sleep(0.5)
                    continue
                pending = (await response.content.readany()).decode()
                if not pending:
                    raise aiohttp.ServerDisconnectedError()
                stats.latencies_ms.append((time.perf_counter() - start) * 1000)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(max(0.0, min(hold_s, stop_at - time.monotonic()))):
                        while chunk := await response.content.readany():
                            *lines, pending = (pending + chunk.decode()).split("\n")
                            for line in lines:
                                if line.startswith("id: "):
                                    last_id = line[4:].strip()
                                    phase.events_seen += 1
        except (aiohttp.ClientError, TimeoutError) as exc:
            stats.errors[_error_name(exc)] += 1
            await asyncio.sleep(0.5)


async def run_phase(
    client: TrafficClient,
    sse_client: TrafficClient,
    phase: Phase,
    mix: Mix,
    *,
    max_in_flight: int,
    sse_clients: int,
    sse_hold_s: float,
    grace_s: float,
) -> Phase:
    """The open-loop timetable of one phase, then at most ``grace_s`` for what is still open (then cancelled)."""
    tasks: dict[asyncio.Task[None], str] = {}
    start = time.monotonic()
    stop_at = start + phase.duration_s
    cpu = time.process_time()
    sse = [asyncio.create_task(_sse_client(sse_client, phase, stop_at, sse_hold_s)) for _ in range(sse_clients)]
    for task in sse:
        tasks[task] = "events (TTFB)"
    open_requests: set[asyncio.Task[None]] = set()
    for index in range(round(phase.rate * phase.duration_s)):
        due = start + index / phase.rate
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        if len(open_requests) >= max_in_flight:
            phase.skipped += 1
            continue
        if time.monotonic() - due > LATE_S:
            phase.late += 1
        kind, path, params = mix.next()
        task = asyncio.create_task(_one(client, phase, mix, kind, path, params))
        open_requests.add(task)
        task.add_done_callback(open_requests.discard)
        tasks[task] = kind
    remaining = max(0.0, stop_at + grace_s - time.monotonic())
    _done, unfinished = await asyncio.wait(list(tasks), timeout=remaining)
    for task in unfinished:
        task.cancel()
        if tasks[task] != "events (TTFB)":  # an SSE client still holding its stream is not an error
            phase.kinds[tasks[task]].errors["unfinished at hard stop"] += 1
    if unfinished:
        await asyncio.wait(unfinished, timeout=5)
    phase.elapsed_s = time.monotonic() - start
    phase.cpu_s = time.process_time() - cpu
    return phase
