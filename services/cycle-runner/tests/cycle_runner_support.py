"""Helpers of cycle-runner's tests: identities, the shared environment store, waiting for runs."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
from prodflow_core.identity import IDENTITY_HEADER, Identity, sign_identity

REPO_ROOT = Path(__file__).resolve().parents[3]
ENV_STORE = REPO_ROOT / ".local" / "cycle-runner" / "envs"
"""Environments are keyed by the hash of their pins, so every test session after the first reuses them."""
FINAL = {"succeeded", "failed", "cancelled", "interrupted"}


def identity_headers(
    secret: str, role: str = "manager", experiments: tuple[str, ...] = ("legend",), user: str = "alice"
) -> dict[str, str]:
    """The signed identity header the gateway would send (valid for an hour: runs outlive the default TTL)."""
    identity = Identity(user=user, experiments=frozenset(experiments), roles=frozenset({role}))
    return {IDENTITY_HEADER: sign_identity(identity, secret, ttl_s=86_400)}


async def wait_run(client: httpx.AsyncClient, cycle: str, rid: str, timeout_s: float = 240.0) -> dict[str, Any]:
    """Poll a run until it is final."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        run: dict[str, Any] = (await client.get(f"/api/cycles/{cycle}/runs/{rid}")).json()
        if run["state"] in FINAL:
            return run
        await asyncio.sleep(0.3)
    raise TimeoutError(f"run {rid} not final after {timeout_s} s")


async def wait_until(
    client: httpx.AsyncClient, cycle: str, rid: str, check: Any, timeout_s: float = 120.0
) -> dict[str, Any]:
    """Poll a run until ``check(run)`` holds."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        run: dict[str, Any] = (await client.get(f"/api/cycles/{cycle}/runs/{rid}")).json()
        if check(run):
            return run
        await asyncio.sleep(0.2)
    raise TimeoutError(f"run {rid} never reached the expected state")


PEAKS_SCRIPT = """
import glob, json, sys
import lh5, numpy as np
out = {}
for path in sorted(glob.glob(sys.argv[1] + "/*/*/*/*-tier_hit.lh5")):
    energy = lh5.read("ch1027201/hit", path)["trapEmax_cal"].nda
    found = {}
    for line in json.loads(sys.argv[2]):
        window = energy[np.abs(energy - line) < 8]
        if window.size > 50:
            found[str(line)] = float(np.median(window))
    out[path.rsplit("/", 1)[1]] = found
print(json.dumps(out))
"""


def hit_peaks(python: Path, tier_hit: Path, lines: list[float]) -> dict[str, dict[str, float]]:
    """Median energy near each line in every hit file, computed with the cycle's own environment."""
    out = subprocess.run(
        [str(python), "-c", PEAKS_SCRIPT, str(tier_hit), json.dumps(lines)],
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    )
    result: dict[str, dict[str, float]] = json.loads(out.stdout)
    return result


def git_head(url: str) -> str:
    """The commit of ``main`` in a file:// repository."""
    path = url.removeprefix("file://")
    return subprocess.run(
        ["git", "-C", path, "rev-parse", "main"], check=True, capture_output=True, text=True
    ).stdout.strip()
