"""``python -m prodflow_cycle_runner.examples DEST``: make the example's git repositories and print a cycle request."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from prodflow_cycle_runner.examples import make_example_repositories


def main() -> None:
    """Create the repositories under the folder given on the command line."""
    dest = Path(sys.argv[1] if len(sys.argv) > 1 else "prodflow-example").resolve()
    urls = make_example_repositories(dest)
    body = {
        "name": "example",
        "dataflow": {"url": urls["dataflow"], "ref": "main"},
        "metadata": {"url": urls["metadata"], "ref": "main"},
    }
    print(json.dumps(body, indent=2))


if __name__ == "__main__":
    main()
