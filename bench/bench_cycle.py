"""A Snakemake run through cycle-runner vs plain ``snakemake`` in the same environment, on the example dataflow.

One run, one CouchDB-API server (``--couch``: bench/servers.py); the
cycle's environment comes from the shared store in ``.local/cycle-runner/envs`` (built on first use):
- ``POST /api/cycles/{name}/runs`` of the example to the hit tier (raw → dsp → hit, 15 jobs, ``--cores 2``):
  wall time from the request to the run's final state (queue, logger plugin, progress events, SQL), against
  the very same ``snakemake`` command line without the service, in the same environment and cycle folder;
- a dry run (``-n``) over ``--files`` raw files (default 5,000: the DAG of raw, dsp, par and hit jobs) through
  the service, against plain ``snakemake -n``.
Generated files are removed between runs, so each run does the same work. Best of ``--repeat``, plain and
service runs interleaved. Wall time on a shared machine is noisy, so CPU time is reported too: the children's
(snakemake and its jobs) plus, for the service, the service's own CPU during the run (it runs in this process).
Run: uv run python bench/bench_cycle.py [--json] [--couch pouchdb|couchdb] [--repeat 1] [--files 5000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).parent))
from figures import Figure, print_table
from prodflow_core.identity import IDENTITY_HEADER, Identity, sign_identity
from prodflow_cycle_runner.app import create_app
from prodflow_cycle_runner.examples import make_example_repositories
from prodflow_cycle_runner.run_env import run_environment
from prodflow_cycle_runner.settings import CycleRunnerSettings
from servers import add_couch_option, bench_couch

SECRET = "bench-secret"  # noqa: S105 - signs identities inside this process only
ENV_STORE = Path(__file__).resolve().parents[1] / ".local" / "cycle-runner" / "envs"
TARGET = "all-l200-p03-hit.gen"
POLL_S = 0.25
"""How often the benchmark asks for the run's state, as a client would (its CPU counts as the service's)."""


def _big_runinfo(files: int) -> dict[str, Any]:
    """``files`` raw files: runs of 50 files each (one calibration, the rest physics)."""
    runinfo: dict[str, Any] = {"p03": {}}
    for run in range((files + 49) // 50):
        stamps = [f"2023{1 + run // 28 % 12:02d}{1 + run % 28:02d}T{i // 60:02d}{i % 60:02d}00Z" for i in range(50)]
        count = min(50, files - 50 * run)
        runinfo["p03"][f"r{run:03d}"] = (
            {"cal": stamps[:1], "phy": stamps[1:count]} if count > 1 else {"cal": stamps[:1]}
        )
    return runinfo


def _commit(repo: Path, message: str) -> None:
    ident = ["-c", "user.name=bench", "-c", "user.email=bench@prodflow.invalid"]
    subprocess.run(["git", "-C", str(repo), "add", "--all"], check=True)
    subprocess.run(["git", *ident, "-C", str(repo), "commit", "--quiet", "-m", message], check=True)


def _clean(cycle: Path) -> None:
    for sub in (
        "generated/tier",
        "generated/par",
        "generated/log/raw",
        "generated/log/dsp",
        "generated/log/hit",
        "generated/log/par_hit",
        ".snakemake",
    ):
        shutil.rmtree(cycle / sub, ignore_errors=True)
    for marker in cycle.glob("*.gen"):
        marker.unlink()


def _cpu() -> tuple[float, float]:
    """CPU seconds so far of this process and of its waited-for children."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime, children.ru_utime + children.ru_stime


def _plain(cycle: Path, env: Path, extra: list[str]) -> tuple[float, float]:
    argv = [str(env / "bin" / "snakemake"), "--snakefile", "workflow/Snakefile", "--configfile", "config.json",
            "--cores", "2", "--nocolor", *extra, "--", TARGET]  # fmt: skip
    (_own, before), start = _cpu(), time.perf_counter()
    with (cycle / "generated" / "plain.log").open("wb") as log:
        subprocess.run(argv, cwd=cycle, env=run_environment(env), stdout=log, stderr=subprocess.STDOUT, check=True)
    return time.perf_counter() - start, _cpu()[1] - before


async def wait_succeeded(http: httpx.AsyncClient, name: str, rid: str) -> None:
    """Poll run ``rid`` of cycle ``name`` until it is final; RuntimeError unless it succeeded."""
    while True:
        state = (await http.get(f"/api/cycles/{name}/runs/{rid}")).json()
        if state["state"] not in {"queued", "running"}:
            break
        await asyncio.sleep(POLL_S)
    if state["state"] != "succeeded":
        raise RuntimeError(f"run {rid} {state['state']}: {state['message']}")


async def _service_run(http: httpx.AsyncClient, name: str, options: list[str]) -> tuple[float, float]:
    (own, children), start = _cpu(), time.perf_counter()
    run = await http.post(f"/api/cycles/{name}/runs", json={"targets": [TARGET], "cores": 2, "options": options})
    run.raise_for_status()
    rid = run.json()["id"]
    await wait_succeeded(http, name, rid)
    elapsed = time.perf_counter() - start
    own_after, children_after = _cpu()
    return elapsed, (own_after - own) + (children_after - children)


async def _cycle(http: httpx.AsyncClient, name: str, repos: dict[str, str]) -> tuple[Path, Path]:
    body = {"name": name, "dataflow": {"url": repos["dataflow"], "ref": "main"},
            "metadata": {"url": repos["metadata"], "ref": "main"}}  # fmt: skip
    created = (await http.post("/api/cycles", json=body)).json()
    install = (await http.post(f"/api/cycles/{name}/software", json={})).json()
    for _ in range(6000):  # the first build of the environment takes a minute or two
        if (await http.get(f"/api/cycles/{name}/runs/{install['id']}")).json()["state"] not in {"queued", "running"}:
            break
        await asyncio.sleep(0.2)
    software = (await http.get(f"/api/cycles/{name}/software")).json()
    if software.get("state") != "installed":
        raise RuntimeError(f"install failed: {software}")
    return Path(created["path"]), Path(software["path"])


Measure = Callable[[], Awaitable[tuple[float, float]]]


async def _compare(
    figures: list[Figure],
    name: str,
    baseline: str,
    repeat: int,
    plain: Measure,
    service: Measure,
    clean: Callable[[], None],
) -> None:
    """Interleave plain and service runs; add the best wall and CPU times of each as two figures."""
    best = {"plain": [float("inf")] * 2, "service": [float("inf")] * 2}
    for _ in range(repeat):
        for kind, measure in (("plain", plain), ("service", service)):
            wall, cpu = await measure()
            clean()
            best[kind] = [min(best[kind][0], wall), min(best[kind][1], cpu)]
    figures.append(Figure(f"{name}, wall", best["service"][0], "s", baseline, best["plain"][0]))
    figures.append(Figure(f"{name}, CPU", best["service"][1], "s", baseline, best["plain"][1]))


async def main(couch_url: str, repeat: int, files: int) -> list[Figure]:
    figures: list[Figure] = []
    with tempfile.TemporaryDirectory(prefix="bench-cycle-") as tmp:
        folder = Path(tmp)
        repos = make_example_repositories(folder / "repos")
        big = folder / "big-repos"
        big_repos = make_example_repositories(big)
        (big / "metadata" / "datasets" / "runinfo.json").write_text(json.dumps(_big_runinfo(files)))
        _commit(big / "metadata", f"{files} raw files")
        settings = CycleRunnerSettings(couchdb_url=couch_url, data_dir=folder / "data", env_store=ENV_STORE,
                                       identity_secret=SECRET, log_json=False, log_level="WARNING",
                                       repositories=[repos["dataflow"].rsplit("/", 2)[0] + "/"])  # fmt: skip
        identity = Identity(user="bench", experiments=frozenset({"*"}), roles=frozenset({"manager"}))
        headers = {IDENTITY_HEADER: sign_identity(identity, SECRET, ttl_s=36000)}
        app = create_app(settings)
        transport = httpx.ASGITransport(app=app)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=transport, base_url="http://s", headers=headers, timeout=600) as http,
        ):
            cycle, env = await _cycle(http, "bench", repos)
            big_cycle, _ = await _cycle(http, "bench-big", big_repos)
            await asyncio.to_thread(_plain, cycle, env, [])  # warm: numba's JIT cache, file system caches
            _clean(cycle)
            await _compare(figures, "cycle run, example to hit tier (15 jobs)", "plain snakemake, same env", repeat,
                           lambda: asyncio.to_thread(_plain, cycle, env, []), lambda: _service_run(http, "bench", []),
                           lambda: _clean(cycle))  # fmt: skip
            await _compare(figures, f"dry-run DAG, {files} raw files", "plain snakemake -n", repeat,
                           lambda: asyncio.to_thread(_plain, big_cycle, env, ["--dry-run"]),
                           lambda: _service_run(http, "bench-big", ["dry-run"]), lambda: None)  # fmt: skip
    return figures


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--files", type=int, default=5000)
    add_couch_option(parser)
    args = parser.parse_args()
    with bench_couch(args.couch) as server:
        figures = asyncio.run(main(server.url, args.repeat, args.files))
    print_table(figures, as_json=args.json, server=server.description)
