"""Load over loopback against the whole embedded system while a big campaign runs.

Starts the embedded system (CouchDB-API server, every service and the gateway, each its own process) in a
temporary folder, makes a local site (max_running 8) and submits a campaign of ``--jobs`` trivial jobs
(``echo {events} > out.txt``) to it while the site is drained. Then, all through the gateway with the admin token:

1. warm-up: every view of the job databases queried once, straight to the loopback CouchDB-API server (PouchDB
   builds an index on its first query, about a minute per view at 100k jobs), then one read of each kind;
2. baseline: the request mix at ``--idle-rate`` req/s for ``--idle-duration`` s against the idle system (the
   campaign's documents exist, nothing runs);
3. the site is undrained and the campaign runs (jobs submitted, running, completing);
4. load: the same mix at ``--rate`` req/s for ``--duration`` s.

The generator is open-loop: request *i* is due at ``start + i / rate`` whatever the answers before it; at most
``--max-in-flight`` requests are outstanding, and a request due while all slots are taken is not sent and counted
``skipped``; one sent more than ``LATE_S`` after it was due (the generator fell behind) is counted ``late``. Both
are "late" in the report. The mix: label summaries (``/api/labels/{label}/summary``), job lists
(``/api/jobs?label=...&limit=50``, some with a status filter, some the next page of an earlier answer), and
``--sse-clients`` event-stream clients (``/api/events``) that connect, read for ``--sse-hold`` s, disconnect and
reconnect with ``Last-Event-ID``; their latency is the time to the first byte of the stream. Every request has a
timeout (30 s per connect/read); everything still open ``--grace`` s after the end of a phase is cancelled and
counted as an error. Latency is measured from when a request was sent; 5xx problem details are counted too.

Prints, per kind: requests sent, errors by status, p50/p90/p99/max latency (ms), achieved rate; the loaded
p50/p99 as ratios of the idle ones; the campaign's progress over the loaded run. Exit 1 if more than
``--max-errors`` requests failed (both phases). ``--json``: one Figure line per figure (bench/figures.py) on
stdout, the rest on stderr. Not a ``bench_*.py`` file, as it takes minutes: bench/run.py does not run it.

``--couch``: ``pouchdb`` (default) lets the embedded runner start its own PouchDB Server (on disk, in the data
folder); ``couchdb`` starts an Apache CouchDB 3.5 (bench/servers.py) and hands the runner its URL (with the admin
credentials as userinfo, never printed); ``url`` uses ``PRODFLOW_COUCHDB_URL`` (loopback only).

Run: uv run python bench/load.py [--couch pouchdb|couchdb] [--rate 300] [--duration 120] [--jobs 100000]
     [--max-errors 0] [--keep] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).parent))
from figures import Figure, print_table
from load_traffic import (
    KINDS,
    LATE_S,
    LOOPBACK,
    REQUEST_TIMEOUT_S,
    STATUSES,
    KindStats,
    Mix,
    Phase,
    TrafficClient,
    check_loopback,
    run_phase,
)
from procs import cpu_snapshot, system_cpu_groups
from prodflow_cli.runner import EmbeddedSystem, free_port_block
from prodflow_core.collector import settle_after_startup
from prodflow_core.couch.server import free_port
from prodflow_core.logs import redact_url
from servers import BenchServer, add_couch_option, bench_couch, describe

LABEL = "2026-11_LoadEcho"
MODULE = "LoadEcho"
SITE = "loadsite"
EVENTS_PER_JOB = 10
COMMAND = "echo {events} > out.txt"
SKIPPED_DESIGNS = {"_design/monitor_verify"}
"""Built only when an admin checks the kept counts (``?verify=true``): no service queries it on its own."""
Say = Callable[[str], None]


async def _guard(request: httpx.Request) -> None:
    check_loopback(str(request.url))


def _client(base_url: str, token: str, *, pool: int = 16) -> httpx.AsyncClient:
    check_loopback(base_url)
    return httpx.AsyncClient(
        base_url=base_url,
        headers={"Authorization": f"Bearer {token}"},
        timeout=httpx.Timeout(REQUEST_TIMEOUT_S, connect=5.0),
        # Idle connections are dropped after 2 s, before uvicorn closes its side (5 s): with httpx's default (also
        # 5 s) a request sent on a connection the server was closing failed with ReadError or RemoteProtocolError.
        limits=httpx.Limits(max_connections=pool, max_keepalive_connections=pool, keepalive_expiry=2.0),
        trust_env=False,  # never through a proxy named in the environment
        event_hooks={"request": [_guard]},
    )


def _check(response: httpx.Response, *ok: int) -> httpx.Response:
    if response.status_code not in ok:
        url = redact_url(str(response.request.url))  # a CouchDB URL may carry credentials
        raise RuntimeError(f"{response.request.method} {url}: {response.status_code} {response.text}")
    return response


async def _expect(response_coro: Any, *ok: int) -> httpx.Response:
    response: httpx.Response = await response_coro
    return _check(response, *ok)


async def _summary(client: httpx.AsyncClient, patience_s: float = 600.0) -> dict[str, Any]:
    """The label summary; a gateway timeout or an unavailable service is asked again, for ``patience_s``."""
    deadline = time.monotonic() + patience_s
    while True:
        response = await client.get(f"/api/labels/{LABEL}/summary", timeout=patience_s)
        if response.status_code == 200 or response.status_code < 500 or time.monotonic() > deadline:
            break
        await asyncio.sleep(1.0)
    _check(response, 200)
    body: dict[str, Any] = response.json()
    return body


async def _until(check: Callable[[], Any], timeout_s: float, what: str, say: Say) -> Any:
    deadline = time.monotonic() + timeout_s
    start = time.monotonic()
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError, RuntimeError):
            if value := await check():
                say(f"  {what}: {time.monotonic() - start:.1f} s")
                return value
        await asyncio.sleep(1.0)
    raise RuntimeError(f"timed out after {timeout_s:.0f} s waiting for {what}")


async def build_indexes(couch_url: str, say: Say) -> None:
    """Query every view of the job databases once (straight to the loopback CouchDB-API server).

    PouchDB builds a view's index on its first query, reading every document: about a minute per view at 100k
    jobs. Left to the services, those builds land inside the measurement (the submitter's first round, the
    monitor's resync every 5 minutes) and time out their other CouchDB reads.
    """
    check_loopback(couch_url)
    async with httpx.AsyncClient(
        base_url=couch_url, timeout=1800, trust_env=False, event_hooks={"request": [_guard]}
    ) as couch:
        views: list[tuple[str, str, str, bool]] = []
        for db in ("data-production", "data-processing"):
            params = {"startkey": '"_design/"', "endkey": '"_design0"', "include_docs": "true"}
            rows = (await _expect(couch.get(f"/{db}/_all_docs", params=params), 200)).json()["rows"]
            for row in rows:
                if row["id"] in SKIPPED_DESIGNS:
                    continue
                for view, spec in row["doc"].get("views", {}).items():
                    views.append((db, row["id"].removeprefix("_design/"), view, "reduce" in spec))
        start = time.monotonic()

        async def build(db: str, design: str, view: str, reduces: bool) -> None:
            params = {"limit": "1", **({"reduce": "false"} if reduces else {})}
            while True:  # CouchDB 3 answers 500 timeout after 60 s while the index keeps building: ask again
                response = await couch.get(f"/{db}/_design/{design}/_view/{view}", params=params)
                if response.status_code != 500 or response.json().get("error") != "timeout":
                    break
            _check(response, 200)

        await asyncio.gather(*(build(*view) for view in views))
        say(f"  {len(views)} view indexes built: {time.monotonic() - start:.1f} s")


async def set_up(client: httpx.AsyncClient, work: Path, jobs: int, say: Say, couch_url: str | None) -> None:
    """The drained local site, the campaign's documents, every view built once."""
    site = {
        "backend": "local",
        "storage_element": f"file://{work / 'se'}",
        "max_running": 8,
        "options": {"work_dir": str(work / "local-backend"), "output_root": str(work / "outputs"), "max_running": 8},
    }
    await _expect(client.put(f"/api/sites/{SITE}", json=site), 200, 201)
    await _expect(client.post(f"/api/sites/{SITE}/drain"), 200)
    body = {
        "jobs": {
            "rat_v": "7.0.15",
            "experiment": "snoplus",
            "label": LABEL,
            "modules": [{"module": MODULE, "n_ev": jobs * EVENTS_PER_JOB, "ev_per_run": EVENTS_PER_JOB}],
        },
        "site": SITE,
        "command_template": COMMAND,
    }
    key = {"Idempotency-Key": f"load-{jobs}"}
    start = time.monotonic()

    async def created() -> bool:
        # The same key again answers with the campaign once made (a gateway timeout leaves the submitter working).
        response = await client.post("/api/campaigns", json=body, headers=key, timeout=300)
        if response.status_code in (200, 201):
            made = response.json()
            assert made["jobs"] == jobs, made
            return True
        say(f"  POST /api/campaigns: {response.status_code} after {time.monotonic() - start:.0f} s; sending again")
        return False

    await _until(created, 1800, f"campaign of {jobs:,} jobs created", say)
    if couch_url is not None:
        await build_indexes(couch_url, say)
    await _until(lambda: _summary_ok(client, jobs), 900, "label summary answers with every job", say)
    for status in (None, *STATUSES):
        params = {"label": LABEL, "limit": "50", **({"status": status} if status else {})}
        await _until(functools.partial(_ok, client, "/api/jobs", params), 600, f"first job list {params}", say)


async def _ok(client: httpx.AsyncClient, path: str, params: dict[str, str]) -> bool:
    return (await client.get(path, params=params, timeout=300)).is_success


async def _summary_ok(client: httpx.AsyncClient, jobs: int) -> bool:
    return bool((await _summary(client)).get("jobs") == jobs)


async def start_campaign(client: httpx.AsyncClient, say: Say) -> dict[str, Any]:
    """Undrain the site, wait until a job runs or completed (cheap list reads), then the label summary."""
    await _expect(client.post(f"/api/sites/{SITE}/undrain"), 200)

    async def running() -> bool:
        for status in ("running", "completed"):
            page = await client.get("/api/jobs", params={"label": LABEL, "status": status, "limit": "1"}, timeout=60)
            if page.is_success and page.json()["count"]:
                return True
        return False

    await _until(running, 600, "first job running or completed after undrain", say)
    return await _summary(client)


def _fmt(value: float) -> str:
    return f"{value:.1f}" if value == value else "-"


def report(phase: Phase, say: Say) -> None:
    say(
        f"\n{phase.name}: {phase.rate:g} req/s for {phase.duration_s:g} s (+ SSE), took {phase.elapsed_s:.1f} s; "
        f"late: {phase.late + phase.skipped} ({phase.skipped} not sent: in-flight bound; {phase.late} sent "
        f">{LATE_S * 1000:.0f} ms behind); SSE events received: {phase.events_seen}; generator CPU "
        f"{phase.cpu_s:.1f} s ({100 * phase.cpu_s / phase.elapsed_s:.0f}% of a core)"
    )
    heads = ("sent", "errors", "p50 ms", "p90 ms", "p99 ms", "max ms")
    say(f"  {'kind':<14} " + " ".join(f"{h:>8}" for h in heads) + f" {'rate/s':>7}  errors by status")
    total = KindStats()
    for kind, stats in phase.kinds.items():
        if kind != "events (TTFB)":
            total.sent += stats.sent
            total.latencies_ms += stats.latencies_ms
            total.errors.update(stats.errors)
        _row(kind, stats, phase.duration_s, say)
    _row("all but SSE", total, phase.duration_s, say)
    for detail, n in phase.details.most_common(5):
        say(f"  {n} x {detail}")


def _row(kind: str, stats: KindStats, duration_s: float, say: Say) -> None:
    count = stats.sent
    errors = ", ".join(f"{name}: {n}" for name, n in sorted(stats.errors.items())) or "-"
    say(
        f"  {kind:<14} {count:>8} {sum(stats.errors.values()):>8} {_fmt(stats.percentile(50)):>8} "
        f"{_fmt(stats.percentile(90)):>8} {_fmt(stats.percentile(99)):>8} "
        f"{_fmt(max(stats.latencies_ms, default=float('nan'))):>8} {count / duration_s:>7.1f}  {errors}"
    )


def figures(idle: Phase, loaded: Phase, jobs: int) -> list[Figure]:
    out: list[Figure] = []
    where = f"at {loaded.rate:g}/s, {jobs:,}-job campaign"
    baseline = f"idle system, {idle.rate:g} req/s"
    for kind in KINDS:
        busy, calm = loaded.kinds[kind], idle.kinds[kind]
        for q in (50, 99):
            out.append(Figure(f"{kind} p{q} {where}", busy.percentile(q), "ms", baseline, calm.percentile(q)))
    sent = sum(s.sent for k, s in loaded.kinds.items() if k != "events (TTFB)")
    out.append(Figure(f"request rate {where}", sent / loaded.duration_s, "/s", "target rate", loaded.rate))
    return out


def _cpu_report(cpu: dict[str, float], phase: Phase, say: Say) -> None:
    """Where the CPU of a phase went, per answered request: each service, the CouchDB-API server, the rest."""
    answered = max(1, sum(kind.sent - sum(kind.errors.values()) for kind in phase.kinds.values()))
    machine = cpu.pop("machine")
    parts = [f"{name} {1000 * spent / answered:.1f}" for name, spent in sorted(cpu.items(), key=lambda i: -i[1])]
    rest = 1000 * (machine - sum(cpu.values())) / answered
    busy = machine / phase.elapsed_s
    say(f"CPU per answered request (ms): {', '.join(parts)}, rest {rest:.1f}; {busy:.2f} cores busy")


async def measure(
    system: EmbeddedSystem, work: Path, args: argparse.Namespace, say: Say, couch_url: str, server: str
) -> int:
    token = system.admin_token()
    if token is None:
        raise RuntimeError("the embedded system wrote no admin token")
    check_loopback(system.gateway_url)
    async with contextlib.AsyncExitStack() as stack:
        admin = await stack.enter_async_context(_client(system.gateway_url, token))
        load = await stack.enter_async_context(TrafficClient(system.gateway_url, token, pool=args.max_in_flight))
        sse = await stack.enter_async_context(TrafficClient(system.gateway_url, token, pool=args.sse_clients))
        say(f"setting up: site {SITE!r} (drained), campaign of {args.jobs:,} jobs, first reads")
        await set_up(admin, work, args.jobs, say, couch_url)
        mix = Mix(LABEL, seed=1)
        # The generator is Python too: its own full collections (50-110 ms) delayed every answer in flight and
        # were counted as the system's latency. Settled as the services settle theirs.
        settle_after_startup()
        common = {"max_in_flight": args.max_in_flight, "sse_clients": args.sse_clients, "sse_hold_s": args.sse_hold}
        say(f"idle baseline: {args.idle_rate:g} req/s for {args.idle_duration:g} s")
        idle = await run_phase(
            load, sse, Phase("idle", args.idle_rate, args.idle_duration), mix, grace_s=args.grace, **common
        )
        report(idle, say)
        say("starting the campaign (undrain)")
        before = await start_campaign(admin, say)
        say(f"loaded: {args.rate:g} req/s for {args.duration:g} s; campaign counts at start: {before['counts']}")
        busy = Phase("loaded", args.rate, args.duration)
        groups = system_cpu_groups(system.procs)
        cpu_before = cpu_snapshot(groups)
        loaded = await run_phase(load, sse, busy, mix, grace_s=args.grace, **common)
        cpu = {name: spent - cpu_before[name] for name, spent in cpu_snapshot(groups).items()}
        report(loaded, say)
        _cpu_report(cpu, loaded, say)
        after = await _summary(admin)
    done_before, done_after = before["counts"].get("completed", 0), after["counts"].get("completed", 0)
    say(
        f"\ncampaign ({args.jobs:,} jobs): completed {done_before} at the start of the load, {done_after} at its end "
        f"(+{done_after - done_before} in {loaded.elapsed_s:.0f} s, "
        f"{(done_after - done_before) / loaded.elapsed_s:.1f} jobs/s); counts at the end: {after['counts']}"
    )
    say("\nloaded vs idle (ratio = loaded / idle):")
    rows = figures(idle, loaded, args.jobs)
    print_table(rows, as_json=args.json, server=server)
    errors = idle.errors + loaded.errors
    say(f"\nerrors: {errors} (idle {idle.errors}, loaded {loaded.errors}); allowed: {args.max_errors}")
    if dead := system.died():
        say(f"{dead} died during the run; see {system.log_of(dead)}")
        return 1
    return 1 if errors > args.max_errors else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=300.0, help="requests per second under load")
    parser.add_argument("--duration", type=float, default=120.0, help="seconds of load")
    parser.add_argument("--jobs", type=int, default=100_000, help="jobs in the campaign")
    parser.add_argument("--idle-rate", type=float, default=20.0)
    parser.add_argument("--idle-duration", type=float, default=10.0)
    parser.add_argument("--max-in-flight", type=int, default=256)
    parser.add_argument("--sse-clients", type=int, default=4)
    parser.add_argument("--sse-hold", type=float, default=3.0, help="seconds an SSE client reads before reconnecting")
    parser.add_argument("--grace", type=float, default=30.0, help="seconds after a phase before open requests are cut")
    parser.add_argument("--max-errors", type=int, default=0)
    parser.add_argument("--keep", action="store_true", help="keep the data folder (logs in its logs/)")
    parser.add_argument("--json", action="store_true", help="Figure lines on stdout, the rest on stderr")
    add_couch_option(parser)
    args = parser.parse_args()
    if args.rate <= 0 or args.duration <= 0 or args.idle_rate <= 0 or args.idle_duration <= 0 or args.jobs < 1:
        parser.error("rates, durations and --jobs must be positive")

    def say(line: str) -> None:
        print(line, file=sys.stderr if args.json else sys.stdout, flush=True)

    work = Path(tempfile.mkdtemp(prefix="prodflow-load-"))
    code = 1
    running: BenchServer | None = None
    with contextlib.ExitStack() as stack:
        if args.couch == "pouchdb":
            os.environ.pop("PRODFLOW_COUCHDB_URL", None)  # the runner's own PouchDB Server, not a shared one
        else:
            running = stack.enter_context(bench_couch(args.couch, data_dir=work / "couchdb3"))
            os.environ["PRODFLOW_COUCHDB_URL"] = running.url  # the runner uses this server instead of its own
        system = EmbeddedSystem(data_dir=work / "data", host=LOOPBACK, port=free_port_block(), couch_port=free_port())
        try:
            say(f"starting the embedded system in {work}")
            system.start()
            if system.couch is not None:
                couch_url, server = system.couch.url, describe("pouchdb", system.couch.url, "on disk, the runner's own")
            else:
                assert running is not None
                couch_url, server = running.url, running.description
            say(f"CouchDB-API server: {server}")
            code = asyncio.run(measure(system, work, args, say, couch_url, server))
        finally:
            system.stop()
    if args.keep:
        say(f"kept {work} (logs in {work / 'data' / 'logs'})")
    else:
        shutil.rmtree(work, ignore_errors=True)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
