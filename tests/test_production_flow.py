"""The whole production flow through the gateway of ``prodflow up``, every service a real process:

file a request → approve → jobs.json → submitter creates the jobs and runs them on the local backend → monitor
follows them, copies outputs to the storage element → ``label.completed`` → the request is ``completed``; the
events reach an SSE client of the gateway.
"""

from __future__ import annotations

import io
import json
import tempfile
import threading
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx
import pytest
from rocrate.rocrate import ROCrate  # type: ignore[import-untyped]
from system_support import System, embedded_system, gateway_client, put_toy_module, snoplus_token, wait_for

pytestmark = pytest.mark.integration
LABEL = "2026-11_ToyBi214_e2e"
MODULE = "ToyWaterBi214"
RUNS = [100151, 100152]
# A stand-in for RAT that needs no experiment software: writes one output file per job. One job fails its first
# attempt with exit code 3, which the site retries: its output's provenance lists both attempts.
RETRIED = (RUNS[1], 2)
TOY_COMMAND = (
    f'if [ "$PRODFLOW_ATTEMPT" = 1 ] && [ {{run}} = {RETRIED[0]} ] && [ {{chunk}} = {RETRIED[1]} ]; then exit 3; fi; '
    "head -c 4096 /dev/urandom > {output_dir}/{module}_r{run}_s{chunk}_p{pass}.dat && echo events {events}"
)


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    with embedded_system(tmp_path_factory.mktemp("system")) as running:
        yield running


def _follow_events(system: System, wanted: set[str], seen: list[dict[str, Any]], stop: threading.Event) -> None:
    headers = {"Authorization": f"Bearer {system.token}"}
    with (
        httpx.Client(base_url=system.gateway, headers=headers, timeout=httpx.Timeout(10, read=240)) as client,
        client.stream("GET", "/api/events", params={"types": ",".join(sorted(wanted))}) as stream,
    ):
        for line in stream.iter_lines():
            if line.startswith("data: "):
                seen.append(json.loads(line[6:]))
            if stop.is_set() or wanted <= {e["type"].removeprefix("org.prodflow.") for e in seen}:
                return


def test_request_to_completed_outputs(system: System) -> None:
    seen: list[dict[str, Any]] = []
    stop = threading.Event()
    follower = threading.Thread(
        target=_follow_events, args=(system, {"label.completed", "request.completed"}, seen, stop), daemon=True
    )
    follower.start()
    with gateway_client(system, system.token) as admin:
        put_toy_module(admin, MODULE, TOY_COMMAND, "toy Bi-214 in water (end-to-end test payload)")
        requester, manager = snoplus_token(admin, "alice", "requester"), snoplus_token(admin, "maria", "manager")
        _retry_exit_code(admin, 3)

    form = {
        "experiment": "snoplus",
        "title": "toy Bi-214, two water runs",
        "kind": "production",
        "rat_v": "7.0.15",
        "modules": [{"module": MODULE, "n_ev": 300, "ev_per_run": 100, "run_numbers": RUNS}],
        "label": LABEL,
        "contacts": ["alice@snolab.example.org"],
        "justification": "end-to-end test",
    }
    with gateway_client(system, requester) as alice, gateway_client(system, manager) as maria:
        filed = alice.post("/api/requests", json=form)
        assert filed.status_code == 201, filed.text
        request_id = filed.json()["id"]
        assert alice.post(f"/api/requests/{request_id}/submit").is_success
        approved = maria.post(f"/api/requests/{request_id}/approve", json={"note": "go"})
        assert approved.status_code == 200, approved.text

        def completed() -> dict[str, Any] | None:
            body: dict[str, Any] = alice.get(f"/api/requests/{request_id}").json()
            assert body["state"] not in {"failed", "cancelled"}, body
            return body if body["state"] == "completed" else None

        request = wait_for(completed, 180, "the request to complete")
        states = [h["state"] for h in request["history"]]
        assert states[-3:] == ["approved", "submitted-to-production", "completed"], states

        summary = alice.get(f"/api/labels/{LABEL}/summary").json()
        assert summary["counts"] == {"completed": 6} and summary["jobs"] == 6
        assert summary["events_done"] == summary["events_requested"] == 600
        exactly = alice.get(f"/api/labels/{LABEL}/exactly").text
        assert exactly == "".join(f"{MODULE} {run} 1\n" for run in RUNS)
        manifest = alice.get(f"/api/grab/{LABEL}").json()
        assert len(manifest["files"]) == 6
        for entry in manifest["files"]:
            data = Path(urlparse(entry["url"]).path).read_bytes()
            assert len(data) == entry["size"] == 4096
            assert entry["adler32"] == f"{zlib.adler32(data):08x}"

        listed, cursor = [], None  # pages through the gateway: each cursor good for alice's query only
        while True:
            params: dict[str, Any] = {"label": LABEL, "limit": 4, **({"cursor": cursor} if cursor else {})}
            page = alice.get("/api/jobs", params=params).json()
            listed += [job["_id"] for job in page["items"]]
            cursor = page["next"]
            if cursor is None:
                break
            assert maria.get("/api/jobs", params=params | {"cursor": cursor}).status_code == 400
        assert len(listed) == len(set(listed)) == 6
        _check_provenance(system, alice, request, manifest["files"])

    follower.join(timeout=30)
    stop.set()
    types = [e["type"] for e in seen]
    assert types.count("org.prodflow.label.completed") == 1, types
    assert "org.prodflow.request.completed" in types
    completed_event = next(e for e in seen if e["type"] == "org.prodflow.label.completed")
    assert completed_event["data"]["label"] == LABEL and completed_event["data"]["counts"] == {"completed": 6}


def _retry_exit_code(admin: httpx.Client, code: int) -> None:
    """Every site retries jobs that exit with ``code``."""
    for site in admin.get("/api/sites").json():
        spec = {k: site[k] for k in ("backend", "storage_element", "max_attempts", "options", "max_running")}
        edited = admin.put(f"/api/sites/{site['name']}", json={**spec, "retry_exit_codes": [code]})
        assert edited.status_code == 200, edited.text


def _check_provenance(
    system: System, alice: httpx.Client, request: dict[str, Any], files: list[dict[str, Any]]
) -> None:
    """Each output traces to its job attempt, campaign and request: approver, state changes, jobs.json digest."""
    retried_name = f"{MODULE}_r{RETRIED[0]}_s{RETRIED[1]}_p1.dat"
    retried = next(entry for entry in files if entry["url"].endswith(retried_name))
    answer = alice.get("/api/provenance", params={"url": retried["url"]})
    assert answer.status_code == 200, answer.text
    chain = answer.json()
    assert chain["kind"] == "job-output" and chain["experiment"] == "snoplus"
    fields = ("url", "size", "adler32")
    assert {k: chain["file"][k] for k in fields} == {k: retried[k] for k in fields}
    job, output = chain["job_output"]["job"], chain["job_output"]
    assert (job["label"], job["module"], job["run"], job["chunk"], job["pass"]) == (LABEL, MODULE, *RETRIED, 1)
    assert job["events"] == 100 and isinstance(job["seed"], int) and job["status"] == "completed"
    assert job["software"]["rat_v"] == "7.0.15" and str(RETRIED[0]) in job["command"]
    first, second = job["attempts"]
    assert (first["attempt"], first["outcome"], first["exit_code"]) == (1, "failed", 3), first
    assert (second["attempt"], second["outcome"], second["exit_code"]) == (2, "completed", 0), second
    assert first["backend_id"] and second["backend_id"] and first["backend_id"] != second["backend_id"]
    assert all(a["submitted_at"] and a["finished_at"] for a in (first, second))
    assert output["attempt"] == 2
    assert output["campaign"]["id"] == request["campaign_id"] and output["campaign"]["pass"] == 1
    made = output["request"]
    assert (made["id"], made["requester"], made["approved_by"]) == (request["id"], "alice", "maria")
    assert made["jobs_json_sha256"] == request["jobs_json_sha256"]
    approval = next(change for change in made["history"] if change["state"] == "approved")
    assert (approval["by"], approval["note"]) == ("maria", "go")
    assert [c["state"] for c in made["history"]] == [h["state"] for h in request["history"]]

    by_file = alice.get("/api/provenance", params={"name": retried_name, "adler32": retried["adler32"]}).json()
    by_job = alice.get("/api/provenance", params={"job": job["id"]}).json()
    assert by_file == by_job == chain
    once = next(entry for entry in files if entry is not retried)
    plain = alice.get("/api/provenance", params={"url": once["url"]}).json()["job_output"]["job"]["attempts"]
    assert [(a["attempt"], a["outcome"], a["exit_code"]) for a in plain] == [(1, "completed", 0)]

    assert alice.get("/api/provenance", params={"url": retried["url"] + ".x"}).status_code == 404
    assert alice.get("/api/provenance", params={"url": once["url"], "job": job["id"]}).status_code == 422
    _check_label_crate(alice, files, job["id"])
    with gateway_client(system, system.token) as admin:
        stranger = admin.post("/api/auth/tokens", json={"user": "lee", "experiments": ["legend"], "roles": ["reader"]})
    with gateway_client(system, stranger.json()["token"]) as lee:
        assert lee.get("/api/provenance", params={"url": retried["url"]}).status_code in (403, 404)


def _check_label_crate(alice: httpx.Client, files: list[dict[str, Any]], retried_job: str) -> None:
    """The label's RO-Crate reads back with ``rocrate``: every output with its checksum, every attempt an action
    whose instrument is RAT, the approver among the agents."""
    answer = alice.get(f"/api/labels/{LABEL}/ro-crate")
    assert answer.status_code == 200 and answer.headers["content-type"] == "application/zip", answer.text
    with tempfile.TemporaryDirectory() as folder:
        with zipfile.ZipFile(io.BytesIO(answer.content)) as bundle:
            bundle.extractall(folder)
        crate = ROCrate(folder)
        entities = {entity.id: entity for entity in crate.get_entities()}
    for entry in files:
        output = entities[entry["url"]]
        assert (output["contentSize"], output["adler32"]) == (str(entry["size"]), entry["adler32"])
    actions = [e for e in entities.values() if e.type == "CreateAction"]
    assert len(actions) == len(files) + 1  # the retried job's failed first attempt is an action too
    failed = entities[f"#{retried_job}/attempt-1"]
    assert str(failed["actionStatus"]).endswith("FailedActionStatus") and "result" not in failed.properties()
    assert all(a["instrument"]["name"].startswith("RAT") for a in actions)
    assert {"alice", "maria"} <= {e["name"] for e in entities.values() if e.type == "Person"}
