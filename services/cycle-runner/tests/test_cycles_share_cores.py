"""Two cycles share the core budget with the real Snakemake: a 5,000-job run and a 3-job run of another cycle.

The service's budget is 4 cores, one reserved (conftest.py). The cycles' environment has the example's pins, so
it is the one test_runs.py uses (built once into the shared store). The big run is cancelled once the small one
is done: its 5,000 ``touch`` jobs would take minutes.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import httpx
import pytest
from conftest import cycle_body
from cycle_runner_support import wait_run, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]
SNAKEFILE = """\
rule many:
    input: expand("generated/tier/many/{i}.txt", i=range(5000))

rule three:
    input: expand("generated/tier/three/{i}.txt", i=range(3))

rule touch:
    output: "generated/tier/{set}/{i}.txt"
    shell: "touch {output}"
"""
_GIT = ["git", "-c", "user.name=prodflow test", "-c", "user.email=test@prodflow.invalid"]


@pytest.fixture(scope="module")
def touch_dataflow(example_repos: dict[str, str]) -> str:
    """A dataflow repository beside the example's (so managers may use it) whose jobs only touch files."""
    repo = Path(example_repos["dataflow"].removeprefix("file://")).parent / "touch-dataflow"
    if not (repo / ".git").is_dir():
        (repo / "Snakefile").parent.mkdir(parents=True, exist_ok=True)
        (repo / "Snakefile").write_text(SNAKEFILE)
        for args in (["init", "-q", "--initial-branch=main"], ["add", "Snakefile"], ["commit", "-q", "-m", "touch"]):
            subprocess.run([*_GIT, "-C", str(repo), *args], check=True, capture_output=True)
    return repo.as_uri()


async def _ready(client: httpx.AsyncClient, name: str, repos: dict[str, str]) -> None:
    created = await client.post("/api/cycles", json=cycle_body(name, repos))
    assert created.status_code == 201, created.text
    install = (await client.post(f"/api/cycles/{name}/software", json={})).json()
    done = await wait_run(client, name, install["id"], timeout_s=900)
    assert done["state"] == "succeeded", done["message"]


async def test_a_small_run_finishes_while_a_big_one_of_another_cycle_runs(
    client: httpx.AsyncClient, example_repos: dict[str, str], touch_dataflow: str
) -> None:
    repos = {"dataflow": touch_dataflow, "metadata": example_repos["metadata"]}
    await _ready(client, "cores-big", repos)
    await _ready(client, "cores-small", repos)

    big = (await client.post("/api/cycles/cores-big/runs", json={"targets": ["many"], "cores": 4})).json()
    started = await wait_until(client, "cores-big", big["id"], lambda r: r["state"] == "running")
    assert (started["cores_granted"], started["jobs"]) == (3, 3)
    assert started["message"].startswith("3 of the 4 cores asked: the most one run gets (1 of 4 kept")

    small = (await client.post("/api/cycles/cores-small/runs", json={"targets": ["three"], "cores": 2})).json()
    done = await wait_run(client, "cores-small", small["id"], timeout_s=120)
    assert done["state"] == "succeeded", (await client.get(done["links"]["log"])).text[-3000:]
    assert (done["cores_granted"], done["jobs"], done["progress"]["total"]) == (1, 1, 4)
    assert "--cores 1 " in (await client.get(done["links"]["log"])).text

    still = await wait_until(client, "cores-big", big["id"], lambda r: r["progress"].get("total") is not None)
    assert still["state"] == "running", still["message"]
    assert still["progress"]["total"] == 5001 and still["progress"]["done"] < 5001
    assert "--cores 3 " in (await client.get(big["links"]["log"])).text
    await client.post(f"/api/cycles/cores-big/runs/{big['id']}/cancel")
    assert (await wait_run(client, "cores-big", big["id"], timeout_s=60))["state"] == "cancelled"
