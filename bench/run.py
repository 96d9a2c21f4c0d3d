"""Run every benchmark under bench/ and print one table: each figure beside its baseline, as a ratio.

Run: uv run python bench/run.py [--couch pouchdb|couchdb|url] [--jobs N] [name ...]   (names are bench_<name>.py
files; default: all; ``--jobs`` goes to the benches that take it: monitor, campaign, indexes).

``--couch`` is handed to every bench as ``PRODFLOW_BENCH_COUCH`` (bench/servers.py); each bench that reads it
starts its own server of that kind and reports it, and the table says which server each figure ran against
(benches that report none do not read the choice).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from figures import Figure, print_table
from servers import COUCH_ENV, add_couch_option

HERE = Path(__file__).parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_couch_option(parser)
    parser.add_argument("--jobs", type=int, help="job documents, for the benches with a --jobs option")
    parser.add_argument("names", nargs="*", help="bench_<name>.py files to run (default: all)")
    args = parser.parse_args()
    wanted = set(args.names)
    env = {**os.environ, COUCH_ENV: args.couch}
    by_server: dict[str, list[Figure]] = {}
    failed: list[str] = []
    for script in sorted(HERE.glob("bench_*.py")):
        name = script.stem.removeprefix("bench_")
        if wanted and name not in wanted:
            continue
        command = [sys.executable, str(script), "--json"]
        if args.jobs is not None and '"--jobs"' in script.read_text():
            command += ["--jobs", str(args.jobs)]
        print(f"running {' '.join(command[1:])} (--couch={args.couch}) ...", file=sys.stderr, flush=True)
        proc = subprocess.run(command, capture_output=True, text=True, check=False, env=env)
        if proc.returncode != 0:
            failed.append(f"{script.name}: exit {proc.returncode}\n{proc.stderr[-1500:]}")
            continue
        server = f"not reported by {script.name} (it does not read --couch)"
        for line in proc.stdout.splitlines():
            if line.startswith("{"):
                row = json.loads(line)
                if set(row) == {"server"}:
                    server = str(row["server"])
                    continue
                row.pop("ratio", None)
                by_server.setdefault(server, []).append(Figure(**row))
    for index, (server, figures) in enumerate(by_server.items()):
        if index:
            print()
        print_table(figures, server=server)
    for failure in failed:
        print(f"FAILED {failure}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
