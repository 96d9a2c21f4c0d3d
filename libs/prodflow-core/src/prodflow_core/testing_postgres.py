"""pytest fixture: a real PostgreSQL server on loopback from Debian's packages, for SQL tests by URL.

Skipped, with the reason, where the server binaries are absent. As root the cluster is run by the ``postgres``
system user (PostgreSQL refuses to run as root).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from prodflow_core.couch.server import free_port

_BIN_ROOT = Path("/usr/lib/postgresql")


def postgres_bin() -> Path | None:
    """The newest installed PostgreSQL ``bin`` folder, or ``None``."""
    found = sorted(_BIN_ROOT.glob("*/bin/postgres"), key=lambda p: int(p.parent.parent.name), reverse=True)
    return found[0].parent if found else None


def _as_user(argv: list[str], user: str | None) -> list[str]:
    return ["runuser", "-u", user, "--", *argv] if user else argv


@contextlib.contextmanager
def postgres_server() -> Iterator[str]:
    """Start a throw-away cluster; yields an ``postgresql://`` URL of database ``prodflow``."""
    bindir = postgres_bin()
    if bindir is None:
        pytest.skip("PostgreSQL server binaries are not installed (Debian package postgresql)")
    user = "postgres" if os.geteuid() == 0 else None
    if user is not None and shutil.which("runuser") is None:
        pytest.skip("running as root without runuser: cannot start PostgreSQL as an unprivileged user")
    with tempfile.TemporaryDirectory(prefix="prodflow-pg-") as tmp:
        data, port = Path(tmp) / "data", free_port()
        if user is not None:
            entry = pwd.getpwnam(user)
            os.chown(tmp, entry.pw_uid, entry.pw_gid)
        subprocess.run(
            _as_user([str(bindir / "initdb"), "-D", str(data), "-U", "prodflow", "--auth=trust", "-E", "UTF8"], user),
            check=True,
            capture_output=True,
        )
        proc = subprocess.Popen(
            _as_user(
                [
                    str(bindir / "postgres"),
                    "-D",
                    str(data),
                    "-p",
                    str(port),
                    "-h",
                    "127.0.0.1",
                    "-k",
                    tmp,
                    "-c",
                    "fsync=off",
                ],
                user,
            ),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            _wait_ready(bindir, port, proc)
            subprocess.run(
                [str(bindir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "prodflow", "prodflow"],
                check=True,
                capture_output=True,
            )
            yield f"postgresql://prodflow@127.0.0.1:{port}/prodflow"
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _wait_ready(bindir: Path, port: int, proc: subprocess.Popen[bytes], timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"postgres exited with {proc.returncode}")
        ready = subprocess.run(
            [str(bindir / "pg_isready"), "-h", "127.0.0.1", "-p", str(port)], capture_output=True, check=False
        )
        if ready.returncode == 0:
            return
        time.sleep(0.2)
    raise RuntimeError("postgres did not become ready")


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """URL of a real PostgreSQL database for the session."""
    with postgres_server() as url:
        yield url
