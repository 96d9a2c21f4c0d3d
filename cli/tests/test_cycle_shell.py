"""``prodflow cycle shell`` and ``prodflow cycle env``: a real cycle-runner behind a real gateway, the cycle's
environment installed (the shared one of the default pins, built once into ``.local/cycle-runner/envs``), and the
commands run as the ``prodflow`` program: in a pseudo-terminal (pexpect), with ``-- COMMAND``, and under ``eval``.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pexpect
import pytest
from cli_support import ADMIN_TOKEN, Cli
from prodflow_cli.cycle_env import CycleEnvironment, export_lines, process_environment
from prodflow_cli.errors import CliError
from prodflow_cli.exits import ExitCode
from prodflow_core.couch.server import free_port
from prodflow_core.testing import serving
from prodflow_cycle_runner.app import create_app as create_cycle_runner
from prodflow_cycle_runner.examples import make_example_repositories
from prodflow_cycle_runner.settings import DEFAULT_PKG_VERSIONS, CycleRunnerSettings
from prodflow_gateway.app import create_app as create_gateway
from prodflow_gateway.settings import GatewaySettings

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]
REPO = Path(__file__).resolve().parents[2]
PRODFLOW = str(Path(sys.executable).parent / "prodflow")
DSPEED = DEFAULT_PKG_VERSIONS["dspeed"].partition("==")[2]
CYCLE = "shell"
PRINT_DSPEED = "python -c 'import dspeed; print(dspeed.__version__)'"
DSPEED_METADATA = "python -c 'import importlib.metadata as md; print(md.version(\"dspeed\"))'"
"""Without importing dspeed, which takes ~10 s of CPU where bytecode is never written (PYTHONDONTWRITEBYTECODE)."""


@dataclass(frozen=True)
class Installed:
    """A gateway whose cycle-runner has the cycle ``shell`` installed; ``root`` holds the cycles."""

    url: str
    root: Path
    repos: dict[str, str]


@pytest.fixture(scope="module")
def installed(couch_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installed]:
    data = tmp_path_factory.mktemp("cycle-shell")
    events_db = f"events-{uuid.uuid4().hex[:8]}"
    runner = CycleRunnerSettings(
        couchdb_url=couch_url,
        data_dir=data / "cycle-runner",
        production_root=data / "it's a root",  # a space and a quote: every value must be shell-quoted
        env_store=REPO / ".local" / "cycle-runner" / "envs",
        events_db=events_db,
        log_json=False,
    )
    repos = make_example_repositories(data / "repos")
    with serving(create_cycle_runner(runner)) as runner_url:
        gateway = GatewaySettings(
            couchdb_url=couch_url,
            data_dir=data / "gateway",
            identity_secret=runner.identity_secret,
            events_db=events_db,
            bootstrap_token=ADMIN_TOKEN,
            cycle_runner_url=runner_url,
            request_api_url=f"http://127.0.0.1:{free_port()}",
            submitter_url=f"http://127.0.0.1:{free_port()}",
            monitor_url=f"http://127.0.0.1:{free_port()}",
            log_json=False,
        )
        with serving(create_gateway(gateway)) as url:
            admin = Cli(url=url, config=data / "config.json")
            made = admin("cycle", "init", CYCLE, "--dataflow", repos["dataflow"], "--metadata", repos["metadata"])
            assert made.code == 0, made.stderr
            done = admin("cycle", "install", CYCLE, "--follow")
            assert done.code == 0, done.stdout + done.stderr
            yield Installed(url, runner.root(), repos)


def _environ(installed: Installed, home: Path) -> dict[str, str]:
    """A plain user environment: no virtual environment, the system's PATH, bash as the shell."""
    home.mkdir(exist_ok=True)
    return {
        "HOME": str(home),
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "SHELL": "/bin/bash",
        "TERM": "dumb",
        "LANG": "C.UTF-8",
        "PRODFLOW_URL": installed.url,
        "PRODFLOW_TOKEN": ADMIN_TOKEN,
        "PRODFLOW_CONFIG": str(home / "config.json"),
        "PYTHONPATH": "/nowhere",  # unset by the cycle's environment
    }


def test_shell_in_a_terminal_runs_the_cycles_pinned_dspeed(installed: Installed, tmp_path: Path) -> None:
    term = pexpect.spawn(
        PRODFLOW,
        ["cycle", "shell", CYCLE],
        env=_environ(installed, tmp_path / "home"),
        cwd=str(tmp_path),
        encoding="utf-8",
        timeout=60,
        dimensions=(40, 200),
    )
    try:
        term.expect_exact("'exit' leaves")
        term.sendline(PRINT_DSPEED)
        term.expect("\r\n" + re.escape(DSPEED) + "\r\n")
        term.sendline('echo "$((6 * 7)) cycle=$PRODFLOW_CYCLE pwd=$PWD pythonpath=${PYTHONPATH-unset}"')
        term.expect(r"42 cycle=(\S+) pwd=(.+) pythonpath=(\S+)\r\n")  # the output, not the echoed input
        assert term.match.groups() == (CYCLE, str(installed.root / CYCLE), "unset")
        term.sendline("exit 3")
        term.expect(pexpect.EOF)
    finally:
        term.close()
    assert term.exitstatus == 3


def test_shell_runs_a_command_and_passes_its_exit_status(installed: Installed, tmp_path: Path) -> None:
    environ = _environ(installed, tmp_path / "home")
    script = "import importlib.metadata as md, os, sys; env = os.environ\n"
    script += "print(md.version('dspeed'), env['PRODENV'], sys.prefix == env['VIRTUAL_ENV'])"
    ran = subprocess.run(
        [PRODFLOW, "cycle", "shell", CYCLE, "--", "python", "-c", script],
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout == f"{DSPEED} {installed.root} True\n"
    without_dashes = subprocess.run(
        [PRODFLOW, "cycle", "shell", CYCLE, "sh", "-c", "exit 7"], env=environ, capture_output=True, timeout=60
    )
    assert without_dashes.returncode == 7
    missing = subprocess.run(
        [PRODFLOW, "cycle", "shell", CYCLE, "--", "no-such-program"], env=environ, capture_output=True, text=True
    )
    assert missing.returncode == ExitCode.FAILURE
    assert missing.stderr.strip() == "error: cannot run no-such-program: No such file or directory"


def test_env_prints_exports_for_eval(installed: Installed, tmp_path: Path) -> None:
    environ = _environ(installed, tmp_path / "home")
    line = f'eval "$({PRODFLOW} cycle env {CYCLE})" && {DSPEED_METADATA}'
    line += ' && echo "$PRODCYCLE" && echo "${PYTHONPATH-unset}"'
    ran = subprocess.run(["bash", "-c", line], env=environ, capture_output=True, text=True, timeout=60)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.splitlines() == [DSPEED, str(installed.root / CYCLE), "unset"]

    exports = subprocess.run([PRODFLOW, "cycle", "env", CYCLE], env=environ, capture_output=True, text=True)
    assert f"export PRODENV={shlex.quote(str(installed.root))}" in exports.stdout.splitlines()
    as_json = subprocess.run([PRODFLOW, "cycle", "env", CYCLE, "--json"], env=environ, capture_output=True, text=True)
    assert '"PRODCYCLE"' in as_json.stdout and as_json.returncode == 0


def test_env_refuses_a_cycle_without_software(installed: Installed, tmp_path: Path) -> None:
    admin = Cli(url=installed.url, config=tmp_path / "config.json")
    made = admin(
        "cycle", "init", "bare", "--dataflow", installed.repos["dataflow"], "--metadata", installed.repos["metadata"]
    )
    assert made.code == 0, made.stderr
    refused = admin("cycle", "env", "bare")
    assert refused.code == ExitCode.CONFLICT
    assert refused.stderr.startswith("error: 409 Conflict: the cycle's software is not installed (state none)")
    assert admin("cycle", "shell", "nowhere").code == ExitCode.NOT_FOUND


def _doc(tmp_path: Path, env_path: Path) -> dict[str, object]:
    return {
        "cycle": "c",
        "path": str(tmp_path),
        "env_path": str(env_path),
        "variables": {"PRODCYCLE": str(tmp_path), "ODD": "a b'c$d`e"},
        "path_prepend": [str(env_path / "bin")],
        "unset": ["PYTHONPATH"],
        "execenv": [],
    }


def test_a_host_without_the_cycles_file_system_is_refused(tmp_path: Path) -> None:
    env = CycleEnvironment.of(_doc(tmp_path, Path("/nowhere/env")))
    with pytest.raises(CliError, match="not on a host that shares the cycle's file system"):
        env.require_here()


def test_exports_quote_every_value_and_names_are_checked(tmp_path: Path) -> None:
    env = CycleEnvironment.of(_doc(tmp_path, tmp_path / "env"))
    lines = export_lines(env)
    shown = subprocess.run(
        ["bash", "-c", "\n".join([*lines, 'printf "%s|" "$ODD" "${PYTHONPATH-unset}" "${PATH%%:*}"'])],
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": "/x"},
        capture_output=True,
        text=True,
        check=True,
    )
    assert shown.stdout == f"a b'c$d`e|unset|{tmp_path / 'env' / 'bin'}|"
    environ = process_environment(env, {"PATH": "/usr/bin", "PYTHONPATH": "/x", "HOME": "/h"})
    assert environ == {"PATH": f"{tmp_path / 'env' / 'bin'}:/usr/bin", "HOME": "/h", **env.variables}
    with pytest.raises(CliError, match="not allowed here: X;rm"):
        CycleEnvironment.of({**_doc(tmp_path, tmp_path), "variables": {"X;rm": "1"}})
    with pytest.raises(CliError, match="not allowed here: PATH"):
        CycleEnvironment.of({**_doc(tmp_path, tmp_path), "unset": ["PATH"]})
