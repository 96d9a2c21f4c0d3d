"""A cycle's software environment on this host: ``export`` lines for ``eval``, and the process environment and
command line of ``prodflow cycle shell`` (legend-prodenv's ``dataprod-load-sw``)."""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prodflow_cli.errors import CliError

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True)
class CycleEnvironment:
    """What ``GET /api/cycles/{name}/environment`` answers."""

    cycle: str
    path: Path
    env_path: Path
    variables: dict[str, str]
    path_prepend: list[str]
    unset: list[str]
    execenv: list[str]

    @classmethod
    def of(cls, doc: Mapping[str, Any]) -> CycleEnvironment:
        """From the API's document; refuses variable names a shell could read as anything but a name."""
        env = cls(
            cycle=str(doc["cycle"]),
            path=Path(doc["path"]),
            env_path=Path(doc["env_path"]),
            variables={str(k): str(v) for k, v in doc["variables"].items()},
            path_prepend=[str(p) for p in doc["path_prepend"]],
            unset=[str(n) for n in doc["unset"]],
            execenv=[str(w) for w in doc.get("execenv") or []],
        )
        bad = [n for n in [*env.variables, *env.unset] if not _NAME.fullmatch(n) or n == "PATH"]
        if bad:
            raise CliError(f"the service sent variable names that are not allowed here: {', '.join(bad)}")
        return env

    def require_here(self) -> None:
        """Fail unless this host sees the cycle's folder and environment (the same shared file system)."""
        if not (self.env_path / "bin").is_dir() or not self.path.is_dir():
            raise CliError(
                f"{self.env_path} does not exist here: not on a host that shares the cycle's file system "
                f"(cycle {self.cycle} is at {self.path} on the cycle-runner's host)"
            )


def export_lines(env: CycleEnvironment) -> list[str]:
    """Shell lines that make the current shell the cycle's (``eval "$(prodflow cycle env NAME)"``)."""
    lines = [f"export {name}={shlex.quote(value)}" for name, value in env.variables.items()]
    if env.path_prepend:
        lines.append("export PATH=" + ":".join(shlex.quote(p) for p in env.path_prepend) + ':"$PATH"')
    if env.unset:
        lines.append("unset " + " ".join(env.unset))
    return lines


def process_environment(env: CycleEnvironment, base: Mapping[str, str]) -> dict[str, str]:
    """``base`` (this process's environment) changed into the cycle's."""
    environ = {k: v for k, v in base.items() if k not in env.unset}
    environ.update(env.variables)
    environ["PATH"] = os.pathsep.join([*env.path_prepend, *([base["PATH"]] if base.get("PATH") else [])])
    return environ


def login_shell(base: Mapping[str, str]) -> str:
    """The user's shell (``$SHELL``), else bash, else sh."""
    for candidate in (base.get("SHELL", ""), "/bin/bash", "/bin/sh"):
        if candidate and Path(candidate).is_file():
            return candidate
    return "sh"


def command_line(env: CycleEnvironment, command: Sequence[str], shell: str) -> list[str]:
    """What to execute: ``command`` (else an interactive ``shell``) under the cycle's container prefix, if any."""
    return [*env.execenv, *(command or [shell])]
