"""Run every benchmark under bench/ and print one table: each figure beside its baseline, as a ratio.

Run: uv run python bench/run.py [name ...]   (names are bench_<name>.py files; default: all)
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from figures import Figure, print_table

HERE = Path(__file__).parent


def main() -> int:
    wanted = set(sys.argv[1:])
    figures: list[Figure] = []
    failed: list[str] = []
    for script in sorted(HERE.glob("bench_*.py")):
        name = script.stem.removeprefix("bench_")
        if wanted and name not in wanted:
            continue
        print(f"running {script.name} ...", file=sys.stderr, flush=True)
        proc = subprocess.run([sys.executable, str(script), "--json"], capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            failed.append(f"{script.name}: exit {proc.returncode}\n{proc.stderr[-1500:]}")
            continue
        for line in proc.stdout.splitlines():
            if line.startswith("{"):
                row = json.loads(line)
                row.pop("ratio", None)
                figures.append(Figure(**row))
    print_table(figures)
    for failure in failed:
        print(f"FAILED {failure}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
