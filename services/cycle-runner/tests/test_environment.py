"""``GET /api/cycles/{name}/environment``: the cycle's software environment as variables (prodflow cycle shell).

The environment is the shared one of the default pins, built once into ``.local/cycle-runner/envs``.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from conftest import Service, cycle_body
from cycle_runner_support import wait_run
from prodflow_cycle_runner.environment import shell_environment

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]


def test_shell_environment_is_a_runs_environment_plus_prodenv(tmp_path: Path) -> None:
    env = tmp_path / "env"
    shell = shell_environment(
        root=tmp_path, cycle_dir=tmp_path / "c1", cycle="c1", env_dir=env, extra={"SLURM_CONF": "/etc/s.conf"}
    )
    assert shell.variables == {
        "SLURM_CONF": "/etc/s.conf",
        "PRODENV": str(tmp_path),
        "PRODCYCLE": str(tmp_path / "c1"),
        "PRODFLOW_CYCLE": "c1",
        "PYTHONDONTWRITEBYTECODE": "1",
        "VIRTUAL_ENV": str(env),
        "PYTHONNOUSERSITE": "1",
    }
    assert shell.path_prepend == [str(env / "bin")] and shell.unset == ["PYTHONPATH", "PYTHONHOME"]


async def test_environment_of_an_installed_cycle(
    client: httpx.AsyncClient, example_repos: dict[str, str], service: Service
) -> None:
    created = await client.post("/api/cycles", json=cycle_body("env-shell", example_repos))
    assert created.status_code == 201, created.text

    early = await client.get("/api/cycles/env-shell/environment")
    assert early.status_code == 409 and early.headers["content-type"] == "application/problem+json"
    assert "not installed (state none)" in early.json()["detail"]
    missing = await client.get("/api/cycles/nowhere/environment")
    assert missing.status_code == 404 and missing.headers["content-type"] == "application/problem+json"

    install = (await client.post("/api/cycles/env-shell/software", json={})).json()
    assert (await wait_run(client, "env-shell", install["id"], timeout_s=900))["state"] == "succeeded"
    answer = await client.get("/api/cycles/env-shell/environment")
    assert answer.status_code == 200, answer.text
    doc = answer.json()
    cycle_dir = service.settings.root() / "env-shell"
    assert doc["path"] == str(cycle_dir) and doc["setup"] == "l200" and doc["execenv"] == []
    assert doc["variables"]["PRODENV"] == str(service.settings.root())
    assert doc["variables"]["PRODCYCLE"] == str(cycle_dir)
    assert (
        doc["variables"]["VIRTUAL_ENV"]
        == doc["env_path"]
        == (await client.get("/api/cycles/env-shell/software")).json()["path"]
    )
    assert doc["path_prepend"] == [doc["env_path"] + "/bin"]
    assert doc["packages"]["dspeed"] == "2.4.3"
    assert (Path(doc["path_prepend"][0]) / "python").exists()  # the CLI tests run it in a terminal

    changed = await client.patch(
        "/api/cycles/env-shell", json={"setups": {"l200": {"pkg_versions": {"pygama": "pygama==2.6.1"}}}}
    )
    assert changed.status_code == 200, changed.text
    outdated = await client.get("/api/cycles/env-shell/environment")
    assert outdated.status_code == 409 and "pins changed" in outdated.json()["detail"]
