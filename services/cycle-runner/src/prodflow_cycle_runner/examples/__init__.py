"""The example dataflow shipped with cycle-runner: a miniature LEGEND production, raw → dsp → hit.

``legend_mini/dataflow`` is the workflow repository (Snakefile, scripts using legend-lh5io, dspeed's
``build_dsp`` and pygama's ``build_hit``); ``legend_mini/metadata`` is the metadata repository (run list,
simulation, DSP and hit configuration). :func:`make_example_repositories` turns both into local git
repositories so a cycle can check them out; ``python -m prodflow_cycle_runner.examples DEST`` does it from a shell.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

EXAMPLE_DIR = Path(__file__).parent / "legend_mini"
REPOSITORIES = ("dataflow", "metadata")
_GIT_IDENTITY = ["-c", "user.name=prodflow example", "-c", "user.email=example@prodflow.invalid"]


def make_example_repositories(dest: Path, git: str = "git") -> dict[str, str]:
    """Copy the example's repositories to ``dest/<name>`` as git repositories (branch ``main``, one commit).

    Returns ``{"dataflow": "file:///...", "metadata": "file:///..."}``. Existing repositories are reused.
    """
    urls = {}
    for name in REPOSITORIES:
        repo = dest / name
        if not (repo / ".git").is_dir():
            shutil.copytree(EXAMPLE_DIR / name, repo, ignore=shutil.ignore_patterns("__pycache__"))
            for argv in (
                [git, "init", "--quiet", "--initial-branch=main", str(repo)],
                [git, "-C", str(repo), "add", "--all"],
                [git, *_GIT_IDENTITY, "-C", str(repo), "commit", "--quiet", "-m", f"example {name}"],
            ):
                subprocess.run(argv, check=True, capture_output=True)
        urls[name] = repo.resolve().as_uri()
    return urls
