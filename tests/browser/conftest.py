"""The dashboard in a real browser: Debian's chromium driven by Playwright, against ``prodflow up``.

The system is started once per test module by the embedded runner on free ports; screenshots go to
``artifacts/browser/``. Tests skip (with the reason) only where chromium is not installed.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright
from prodflow_cli.runner import SERVICES, free_port_block
from prodflow_core.couch.server import free_port

sys.path.insert(0, str(Path(__file__).parent))  # browser_support beside this file, under --import-mode=importlib

from browser_support import ARTIFACTS, System

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _value(lines: list[str], prefix: str) -> str:
    return next(line.split()[-1] for line in lines if line.strip().startswith(prefix))


def _stop(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGINT)
    try:
        proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()


def _start(data_dir: Path) -> tuple[subprocess.Popen[str], list[str], int]:
    """Start ``prodflow up``; returns the process, what it printed, and the gateway's port (raises if it failed)."""
    port = free_port_block()
    couch_port = next(p for p in iter(free_port, None) if not port <= p < port + len(SERVICES))
    env = {k: v for k, v in os.environ.items() if k != "PRODFLOW_COUCHDB_URL"}
    env.update(extra_environment())
    command = [str(Path(sys.executable).parent / "prodflow"), "up", "--data-dir", str(data_dir)]
    command += ["--port", str(port), "--couch-port", str(couch_port)]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    assert proc.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        if line.startswith("Press Ctrl-C"):
            return proc, lines, port
    _stop(proc)
    raise RuntimeError(f"prodflow up did not come up: {''.join(lines)}")


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    """``prodflow up`` on free ports for this module; stopped with SIGINT (as Ctrl-C) afterwards.

    Ports are free when chosen but other processes on the machine may take one first: then it is started again
    on other ports (three tries).
    """
    for attempt in range(3):
        data_dir = tmp_path_factory.mktemp("prodflow-up")
        try:
            proc, lines, port = _start(data_dir)
            break
        except RuntimeError:
            if attempt == 2:
                raise
    try:
        yield System(
            url=f"http://127.0.0.1:{port}",
            token=(data_dir / "gateway-admin-token").read_text().strip(),  # the banner says where, not what
            couch_url=_value(lines, "couchdb"),
            data_dir=data_dir,
        )
    finally:
        _stop(proc)


def extra_environment() -> dict[str, str]:
    """Settings the browser tests give the services: fast loops, and cycle environments reused across runs."""
    store = Path(__file__).resolve().parents[2] / ".local" / "cycle-runner" / "envs"
    return {
        "CYCLE_RUNNER_ENV_STORE": str(store),
        "CYCLE_RUNNER_PROGRESS_INTERVAL_S": "0.5",
        # the webhook test's receiver listens on loopback; a failing receiver is given up on within a second
        "NOTIFIER_ALLOWED_NETWORKS": '["127.0.0.1/32"]',
        "NOTIFIER_RETRY_BASE_S": "0.2",
        "NOTIFIER_RETRY_MAX_S": "0.5",
        "NOTIFIER_GIVE_UP_AFTER_S": "1",
    }


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    """Headless chromium from Debian, driven by Playwright (never a downloaded browser)."""
    if not Path(CHROMIUM).exists() and not shutil.which("chromium"):
        pytest.skip("Debian's chromium is not installed (apt-get install chromium; see scripts/apt-packages.txt)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, timeout=30_000)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser: Browser, request: pytest.FixtureRequest) -> Iterator[Page]:
    """A fresh browser context and page; a screenshot is saved when the test ends, failed or not."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(15_000)
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        yield tab
    finally:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        try:
            tab.screenshot(path=str(ARTIFACTS / f"{request.node.name}-end.png"), full_page=True)
        finally:
            context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"
