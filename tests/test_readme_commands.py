"""The README's operator commands work as written, each in a fresh login shell, against a running ``prodflow up``.

``scripts/install-launcher.sh`` (which ``up.sh`` and ``test.sh`` run through the bootstrap) puts ``prodflow`` and
``uv`` where a login shell finds them: ``/usr/local/bin`` as root, else ``~/.local/bin``. The test runs it with a
scratch home (as root it writes ``/usr/local/bin/prodflow``, the launcher every bootstrap writes; idempotent), starts
the system with its data in ``.data`` of a scratch folder standing for the checkout (the developer's own ``.data``
and ``~/.config/prodflow`` are never touched), and runs each line of the README block marked ``readme-commands:
operator`` as ``env -i HOME=<scratch home> PATH=/usr/local/bin:/usr/bin:/bin bash -lc 'cd <scratch> && <line>'``.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
from system_support import embedded_system

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]
REPO = Path(__file__).resolve().parents[1]
MARK = "<!-- readme-commands: operator"
LOGIN_PATH = "/usr/local/bin:/usr/bin:/bin"


def operator_commands(readme: str) -> list[str]:
    """The lines of the fenced block after the ``readme-commands: operator`` comment."""
    found = re.search(r"```sh\n(.*?)```", readme[readme.index(MARK) :], re.S)
    assert found is not None, "no ```sh block after the readme-commands mark"
    lines = [line for line in found.group(1).splitlines() if line.strip()]
    assert not [line for line in lines if line.rstrip().endswith("\\")], "one command per line, please"
    return lines


def _fresh_home(home: Path) -> Path:
    """A new user's home: Debian's default ~/.profile for users other than root (root's adds nothing to PATH)."""
    home.mkdir()
    if os.geteuid() != 0:
        skel = Path("/etc/skel/.profile")
        if skel.exists():
            shutil.copy(skel, home / ".profile")
        else:
            (home / ".profile").write_text('[ -d "$HOME/.local/bin" ] && PATH="$HOME/.local/bin:$PATH"\n')
    return home


def _login_shell(home: Path, folder: Path, line: str, timeout_s: float = 90) -> subprocess.CompletedProcess[str]:
    command = f"cd {shlex.quote(str(folder))} && {line}"
    return subprocess.run(
        ["env", "-i", f"HOME={home}", f"PATH={LOGIN_PATH}", "bash", "-lc", command],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        stdin=subprocess.DEVNULL,
    )


def test_the_block_is_there_and_uses_prodflow_not_uv_run() -> None:
    commands = operator_commands((REPO / "README.md").read_text(encoding="utf-8"))
    assert commands[0].startswith("prodflow login --data-dir .data")
    assert all(line.startswith("prodflow ") for line in commands), commands


def test_readme_operator_commands_work_from_a_fresh_login_shell(tmp_path: Path) -> None:
    commands = operator_commands((REPO / "README.md").read_text(encoding="utf-8"))
    home = _fresh_home(tmp_path / "home")
    installed = subprocess.run(
        ["bash", str(REPO / "scripts" / "install-launcher.sh")],
        env={**os.environ, "HOME": str(home)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert installed.returncode == 0, installed.stderr
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    (checkout / "examples").symlink_to(REPO / "examples")

    uv = _login_shell(home, checkout, "uv --version")
    assert uv.returncode == 0 and uv.stdout.startswith("uv "), uv.stderr
    with embedded_system(checkout / ".data"):
        for line in commands:
            ran = _login_shell(home, checkout, line)
            assert ran.returncode == 0, f"{line}\nexit {ran.returncode}\n{ran.stdout}\n{ran.stderr}"
            if line.startswith("prodflow events"):
                assert len(ran.stdout.splitlines()) == 5, ran.stdout
    grabbed = sorted(p.name for p in (checkout / "data").rglob("*.txt"))
    assert grabbed == [f"Hello_r{run}_p1.txt" for run in (1, 2, 3)], grabbed
    assert (home / ".config" / "prodflow" / "config.json").exists()
