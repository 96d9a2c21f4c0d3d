"""The example dataflow on Slurm through cycle-runner vs plain ``snakemake --executor slurm``, and vs a local run.

One single-node Slurm (slurm-wlm, ``prodflow_core.backends.slurm_cluster``, as the tests start it), one
CouchDB-API server (``--couch``: bench/servers.py), the cycle's environment from the shared store in
``.local/cycle-runner/envs`` (built on first use). The example to the hit tier (raw → dsp → hit, 15 jobs, 14 of
them Slurm jobs, ``--jobs 2`` on a 2-CPU node), each run's wall time:
- through cycle-runner: ``POST /api/cycles/{name}/runs`` with ``"executor": "slurm"`` until the run is final
  (the cycle's partition, the workflow profile's per-rule resources, progress events, the log);
- against plain ``snakemake --executor slurm`` with the same options and resources, in the same environment and
  cycle folder (goal: a ratio of 1.10 at most);
- and against plain ``snakemake`` with the local executor (what Slurm costs on one node: sbatch, the job's own
  Snakemake, srun, status polls).
Generated files are removed between runs, so each run does the same work; a local run first fills numba's JIT
cache. Best of ``--repeat``, the three kinds interleaved. Wall time on a shared machine is noisy, and the Slurm
executor polls job states at growing intervals (1 s after a job ended, then +10 s while none does), so Slurm wall
times move in steps of seconds.
Run: uv run python bench/bench_slurm_cycle.py [--json] [--couch pouchdb|couchdb] [--repeat 1]
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parent))
from bench_cycle import ENV_STORE, SECRET, TARGET, _clean, wait_succeeded
from figures import Figure, print_table
from prodflow_core.backends.slurm_cluster import SlurmCluster, slurm_cluster
from prodflow_core.couch.server import free_port
from prodflow_core.identity import IDENTITY_HEADER, Identity, sign_identity
from prodflow_cycle_runner.app import create_app
from prodflow_cycle_runner.examples import make_example_repositories
from prodflow_cycle_runner.profile import profile_default_resources
from prodflow_cycle_runner.run_env import run_environment
from prodflow_cycle_runner.settings import CycleRunnerSettings
from servers import add_couch_option, bench_couch

OPTIONS = [
    "slurm-status-command=squeue",
    "slurm-init-seconds-before-status-checks=1",
    "seconds-between-status-checks=1",
]
"""The bench Slurm has no accounting (status from ``squeue``); first status checks after a second."""
PARTITION = "debug"


def _plain(cycle: Path, env: Path, extra: list[str], slurm_conf: Path) -> float:
    argv = [str(env / "bin" / "snakemake"), "--snakefile", "workflow/Snakefile", "--configfile", "config.json",
            "--cores", "2", "--nocolor", *extra, "--", TARGET]  # fmt: skip
    start = time.perf_counter()
    with (cycle / "generated" / "plain.log").open("wb") as log:
        subprocess.run(argv, cwd=cycle, env=run_environment(env, {"SLURM_CONF": str(slurm_conf)}), stdout=log,
                       stderr=subprocess.STDOUT, check=True)  # fmt: skip
    return time.perf_counter() - start


def _plain_slurm_args(cycle: Path) -> list[str]:
    """What cycle-runner passes for a Slurm run, without its logger and job names."""
    resources = {**profile_default_resources(cycle), "slurm_partition": repr(PARTITION)}
    return ["--executor", "slurm", "--jobs", "2", "--slurm-no-account", "--slurm-status-command", "squeue",
            "--slurm-init-seconds-before-status-checks", "1", "--seconds-between-status-checks", "1",
            "--default-resources", *(f"{name}={value}" for name, value in resources.items())]  # fmt: skip


async def _service_run(http: httpx.AsyncClient, name: str) -> float:
    start = time.perf_counter()
    body = {"targets": [TARGET], "cores": 2, "executor": "slurm", "options": OPTIONS}
    run = await http.post(f"/api/cycles/{name}/runs", json=body)
    run.raise_for_status()
    rid = run.json()["id"]
    await wait_succeeded(http, name, rid)
    elapsed = time.perf_counter() - start
    return elapsed


async def _cycle(http: httpx.AsyncClient, name: str, repos: dict[str, str]) -> tuple[Path, Path]:
    body = {"name": name, "dataflow": {"url": repos["dataflow"], "ref": "main"},
            "metadata": {"url": repos["metadata"], "ref": "main"}, "slurm": {"partition": PARTITION}}  # fmt: skip
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


async def main(couch_url: str, cluster: SlurmCluster, repeat: int) -> list[Figure]:
    with tempfile.TemporaryDirectory(prefix="bench-slurm-cycle-") as tmp:
        folder = Path(tmp)
        repos = make_example_repositories(folder / "repos")
        settings = CycleRunnerSettings(couchdb_url=couch_url, data_dir=folder / "data", env_store=ENV_STORE,
                                       identity_secret=SECRET, log_json=False, log_level="WARNING",
                                       repositories=[repos["dataflow"].rpartition("/")[0] + "/"],
                                       run_env={"SLURM_CONF": str(cluster.conf)})  # fmt: skip
        identity = Identity(user="bench", experiments=frozenset({"*"}), roles=frozenset({"manager"}))
        headers = {IDENTITY_HEADER: sign_identity(identity, SECRET, ttl_s=36000)}
        app = create_app(settings)
        transport = httpx.ASGITransport(app=app)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=transport, base_url="http://s", headers=headers, timeout=600) as http,
        ):
            cycle, env = await _cycle(http, "bench-slurm", repos)
            await asyncio.to_thread(_plain, cycle, env, [], cluster.conf)  # warm: numba's JIT cache, file caches
            _clean(cycle)
            measures: dict[str, Callable[[], Awaitable[float]]] = {
                "local": lambda: asyncio.to_thread(_plain, cycle, env, [], cluster.conf),
                "plain slurm": lambda: asyncio.to_thread(_plain, cycle, env, _plain_slurm_args(cycle), cluster.conf),
                "service": lambda: _service_run(http, "bench-slurm"),
            }
            best = dict.fromkeys(measures, float("inf"))
            for _ in range(repeat):
                for kind, measure in measures.items():
                    best[kind] = min(best[kind], await measure())
                    _clean(cycle)
    name = "example to hit tier (15 jobs), cycle-runner on Slurm, wall"
    return [
        Figure(name, best["service"], "s", "plain snakemake --executor slurm", best["plain slurm"]),
        Figure(name, best["service"], "s", "plain snakemake, local executor", best["local"]),
        Figure("plain snakemake --executor slurm, wall", best["plain slurm"], "s", "plain snakemake, local executor",
               best["local"]),
    ]  # fmt: skip


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--repeat", type=int, default=1)
    add_couch_option(parser)
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory(prefix="bench-slurm-") as slurm_dir,
        bench_couch(args.couch) as server,
        slurm_cluster(Path(slurm_dir), free_port(), free_port()) as cluster,
    ):
        if not cluster.serves_default_conf:
            raise SystemExit(f"{cluster.default_conf} is another Slurm's: the jobs' inner srun would read it")
        figures = asyncio.run(main(server.url, cluster, args.repeat))
    print_table(figures, as_json=args.json, server=server.description)
