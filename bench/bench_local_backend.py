"""The local backend's own cost: N trivial jobs through it vs the same shell commands run straight by a pool.

Both run the jobs ``--slots`` at a time. The backend adds its queue on disk, a detached wrapper per slot, the
state files and the status calls the monitor would make; the baseline is ``sh -c`` from a thread pool.
Run: uv run python bench/bench_local_backend.py [--json] [--n 1000] [--slots 16]
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from figures import Figure, print_table
from prodflow_core.backends.base import BackendJob
from prodflow_core.backends.local import LocalBackend

COMMAND = "echo {i} > out.txt"


async def through_backend(root: Path, n: int, slots: int, poll_s: float = 1.0) -> float:
    """Wall time of ``n`` trivial jobs through a bare ``LocalBackend`` of ``slots`` slots, polled every ``poll_s``."""
    backend = LocalBackend(root / "work", slots)
    jobs = [BackendJob(name=f"job{i}", command=COMMAND.format(i=i), output_dir=root / "out" / str(i)) for i in range(n)]
    start = time.perf_counter()
    await backend.submit(jobs)
    names = [job.name for job in jobs]
    while True:
        states = await backend.status(names)
        if all(state.state.is_final for state in states.values()):
            break
        await asyncio.sleep(poll_s)  # the monitor polls every few seconds
    elapsed = time.perf_counter() - start
    if not all(state.exit_code == 0 for state in states.values()):
        raise RuntimeError("a benchmark job failed")
    return elapsed


def _straight(root: Path, n: int, slots: int) -> float:
    def one(i: int) -> None:
        folder = root / "plain" / str(i)
        folder.mkdir(parents=True)
        subprocess.run(["/bin/sh", "-c", COMMAND.format(i=i)], cwd=folder, check=True)

    start = time.perf_counter()
    with ThreadPoolExecutor(slots) as pool:
        list(pool.map(one, range(n)))
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--slots", type=int, default=16)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base = _straight(Path(tmp), args.n, args.slots)
        through = asyncio.run(through_backend(Path(tmp), args.n, args.slots))
    name = f"{args.n} trivial jobs, local backend, {args.slots} slots"
    figures = [Figure(name, through, "s", f"same commands, {args.slots}-thread pool", base)]
    print_table(figures, as_json=args.json, server="none (this bench uses no CouchDB)")


if __name__ == "__main__":
    main()
