"""Admins choose the code a cycle runs (repositories, pins beyond the allowed ones, the container prefix, config
keys); managers choose among it. Each refusal is a 403 problem naming the rule and the fields."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import Service, cycle_body
from cycle_runner_support import identity_headers
from prodflow_cycle_runner.examples import make_example_repositories

pytestmark = pytest.mark.integration


def _refused(resp: httpx.Response, *fields: str) -> None:
    assert resp.status_code == 403, resp.text
    problem: dict[str, Any] = resp.json()
    assert problem["rule"] == "cycle-code-admin-chosen" and problem["required_role"] == "admin"
    assert sorted(e["field"] for e in problem["errors"]) == sorted(fields)


async def test_creation_takes_repositories_and_pins_from_the_allow_lists(
    client: httpx.AsyncClient, service: Service, example_repos: dict[str, str], tmp_path: Path
) -> None:
    elsewhere = make_example_repositories(tmp_path / "elsewhere")
    body = cycle_body("al-repos", elsewhere, software=[{"name": "x", "url": elsewhere["metadata"]}])
    _refused(await client.post("/api/cycles", json=body), "dataflow.url", "metadata.url", "software.0.url")
    pins = {"pygama": "pygama==2.6.1", "numpy": "numpy==2.0.0"}
    _refused(await client.post("/api/cycles", json=cycle_body("al-pins", example_repos, pkg_versions=pins)),
             "pkg_versions.numpy")  # fmt: skip
    prefix = cycle_body("al-execenv", example_repos, execenv={"cmd": "apptainer", "arg": "exec img.sif"})
    _refused(await client.post("/api/cycles", json=prefix), "execenv")

    allowed = cycle_body("al-ok", example_repos, pkg_versions={"pygama": "pygama==2.6.1"})
    assert (await client.post("/api/cycles", json=allowed)).status_code == 201
    admin = identity_headers(service.settings.identity_secret, role="admin")
    made = await client.post("/api/cycles", json={**body, "name": "al-admin", "pkg_versions": pins}, headers=admin)
    assert made.status_code == 201, made.text


async def test_a_manager_patches_paths_and_allowed_pins_only(
    client: httpx.AsyncClient, service: Service, example_repos: dict[str, str]
) -> None:
    await client.post("/api/cycles", json=cycle_body("al-patch", example_repos))
    fine = {"setups": {"l200": {"pkg_versions": {"dspeed": "dspeed==2.4.2"}, "paths": {"log": "$_/generated/log2"}}}}
    assert (await client.patch("/api/cycles/al-patch", json=fine)).status_code == 200
    for patch, fields in [
        ({"setups": {"l200": {"pkg_versions": {"numpy": "numpy==2.0.0"}}}}, ["setups.l200.pkg_versions.numpy"]),
        ({"setups": {"l200": {"execenv": {"cmd": "env"}}}}, ["setups.l200.execenv"]),
        ({"setups": {"l200": {"hooks": {"pre": "x"}}}}, ["setups.l200.hooks"]),
        ({"dataflow_options": {"shell": "sh"}}, ["config"]),
    ]:
        _refused(await client.patch("/api/cycles/al-patch", json=patch), *fields)
    admin = identity_headers(service.settings.identity_secret, role="admin")
    numpy = {"setups": {"l200": {"pkg_versions": {"numpy": "numpy==2.0.0"}}}}
    assert (await client.patch("/api/cycles/al-patch", json=numpy, headers=admin)).status_code == 200
    assert (await client.patch("/api/cycles/al-patch", json=fine)).status_code == 200  # numpy unchanged: fine
