"""The operator's commands against the whole system started by the embedded runner (real services, real CouchDB).

request → approve → campaign (submitter, local backend) → jobs run → label completed (monitor) → grab; direct
campaign submission; failures, watch exit codes and resubmission; sites; and a LEGEND cycle.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from cli_support import Cli
from prodflow_cli.exits import ExitCode
from prodflow_cli.runner import SERVICES, EmbeddedSystem, RunnerError, free_port_block
from prodflow_core.couch.server import free_port

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
WRITES_OUTPUT = "printf '%s events of %s\\n' {events} {module} > {module}_r{run}_p{pass}.txt"


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedSystem]:
    """``prodflow up`` in-process (the services are subprocesses), on free ports, with its own CouchDB."""
    with pytest.MonkeyPatch.context() as env:
        env.delenv("PRODFLOW_COUCHDB_URL", raising=False)
        env.setenv("CYCLE_RUNNER_ENV_STORE", str(REPO / ".local" / "cycle-runner" / "envs"))
        env.setenv("CYCLE_RUNNER_PROGRESS_INTERVAL_S", "0.5")
        for attempt in range(3):  # chosen ports may be taken by another process first: try others
            port = free_port_block()
            couch_port = next(p for p in iter(free_port, None) if not port <= p < port + len(SERVICES))
            up = EmbeddedSystem(data_dir=tmp_path_factory.mktemp("up").resolve(), port=port, couch_port=couch_port)
            try:
                up.start()
                break
            except RunnerError:
                up.stop()
                if attempt == 2:
                    raise
        try:
            yield up
        finally:
            up.stop()


@pytest.fixture
def admin(system: EmbeddedSystem, tmp_path: Path) -> Cli:
    """``prodflow`` as the first admin of the system."""
    return Cli(url=system.gateway_url, config=tmp_path / "config.json", token=system.admin_token())


def _module(admin: Cli, tmp_path: Path, name: str, command: str) -> None:
    spec = tmp_path / f"{name}.yaml"
    spec.write_text(yaml.safe_dump({"event_modes": ["by_events"], "command": command, "default_ev_per_run": 100}))
    result = admin("catalog", "set-module", "snoplus", name, str(spec))
    assert result.code == 0, result.stderr


def _request_form(tmp_path: Path, label: str, module: str, n_ev: int) -> Path:
    form = tmp_path / f"{label}.yaml"
    form.write_text(
        yaml.safe_dump(
            {
                "experiment": "snoplus",
                "title": f"{module} for the CLI tests",
                "rat_v": "7.0.15",
                "label": label,
                "contacts": ["alice@example.org"],
                "modules": [{"module": module, "n_ev": n_ev, "ev_per_run": 100}],
            }
        )
    )
    return form


def test_request_approved_runs_to_completion_and_outputs_are_grabbed(admin: Cli, tmp_path: Path) -> None:
    label = "2026-11_cli_flow_v1"
    _module(admin, tmp_path, "CliGeo", WRITES_OUTPUT)
    form = _request_form(tmp_path, label, "CliGeo", 300)

    preview = admin("request", "new", str(form), "--preview", "--json")
    assert preview.code == 0, preview.stderr
    assert preview.json()["jobs"] == 3

    filed = admin("request", "new", str(form), "--submit", "--json").json()
    assert filed["state"] == "submitted" and filed["label"] == label
    again = admin("request", "new", str(form))
    assert again.code == ExitCode.INVALID
    assert f"already used by request {filed['id']}" in again.stderr and len(again.stderr.splitlines()) == 1

    approved = admin("request", "approve", filed["id"], "-m", "go", "--json").json()
    assert approved["state"] == "approved" and approved["jobs"] == 3
    illegal = admin("request", "reject", filed["id"], "--reason", "too late")
    assert illegal.code == ExitCode.CONFLICT and illegal.stderr.startswith("error: 409 ")

    watched = admin("label", "watch", label, "--interval", "0.5", "--timeout", "90", "--json")
    assert watched.code == 0, watched.stderr
    assert watched.lines()[-1]["counts"] == {"completed": 3}

    summary = admin("label", "summary", label, "--json").json()
    assert summary["complete"] and summary["events_done"] == summary["events_requested"] == 300
    assert admin("label", "exactly", label).stdout == "CliGeo 1 1\nCliGeo 2 1\nCliGeo 3 1\n"
    assert label in admin("label", "list").stdout
    assert len(admin("label", "list", "--limit", "1", "--json").json()) == 1  # as many as asked for

    jobs = admin("jobs", "list", "--label", label, "--json").json()
    assert sorted(j["run"] for j in jobs) == [1, 2, 3] and {j["status"] for j in jobs} == {"completed"}
    job = admin("jobs", "show", jobs[0]["_id"], "--json").json()
    assert [h["status"] for h in job["history"]][-1] == "completed" and job["outputs"]

    campaigns = admin("campaign", "list", "--label", label, "--json").json()
    assert [c["request_id"] for c in campaigns] == [filed["id"]]
    assert admin("campaign", "exactly", campaigns[0]["id"]).stdout == admin("label", "exactly", label).stdout

    jobs_json = tmp_path / "jobs.json"
    assert admin("request", "jobs-json", filed["id"], "-o", str(jobs_json)).code == 0
    assert json.loads(jobs_json.read_text())["label"] == label

    deadline = time.monotonic() + 30
    while admin("request", "show", filed["id"], "--json").json()["state"] != "completed":
        assert time.monotonic() < deadline, "the request did not reach 'completed'"
        time.sleep(0.5)

    dest = tmp_path / "grabbed"
    grabbed = admin("grab", label, "--to", str(dest), "--json").json()
    assert len(grabbed["downloaded"]) == 3 and not grabbed["failed"]
    files = sorted(dest.rglob("*.txt"))
    assert [f.read_text() for f in files] == ["100 events of CliGeo\n"] * 3
    files[0].write_text("corrupted!!!!!!!!!!!\n")  # same name, wrong bytes: fetched again, the rest skipped
    regrab = admin("grab", label, "--to", str(dest), "--json").json()
    assert len(regrab["downloaded"]) == 1 and len(regrab["skipped"]) == 2
    assert files[0].read_text() == "100 events of CliGeo\n"
    manifest = admin("grab", label, "--to", str(dest), "--manifest").json()
    assert manifest["count"] == 3 and all(f["adler32"] for f in manifest["files"])

    # Archived: the documents leave the database, the label answers the same from its archive; then restored.
    archived = admin("label", "archive", label, "--timeout", "60", "--json")
    assert archived.code == 0, archived.stderr
    assert archived.json()["state"] == "archived" and archived.json()["progress"] == {"done": 3, "jobs": 3}
    assert admin("label", "summary", label, "--json").json()["archived"] is True
    assert admin("label", "exactly", label).stdout == "CliGeo 1 1\nCliGeo 2 1\nCliGeo 3 1\n"
    assert admin("jobs", "show", jobs[0]["_id"], "--json").json()["archived"] is True
    assert admin("grab", label, "--to", str(dest), "--manifest").json()["files"] == manifest["files"]
    assert "archived" in admin("label", "archive-status", label).stdout
    # A downloaded file traced back (its job read from the archive): job, attempt, request and its approval.
    traced = admin("provenance", str(files[0]))
    assert traced.code == 0, traced.stderr
    assert filed["id"] in traced.stdout and "approved" in traced.stdout and " matches" in traced.stdout
    assert campaigns[0]["id"] in traced.stdout and "CliGeo" in traced.stdout
    changed = tmp_path / files[0].name
    changed.write_text("not what prodflow made\n")
    assert admin("provenance", str(changed)).code == ExitCode.NOT_FOUND
    restored = admin("label", "restore", label, "--timeout", "60")
    assert restored.code == 0 and f"{label}: restored" in restored.stdout, restored.stderr
    assert "archived" not in admin("jobs", "show", jobs[0]["_id"], "--json").json()
    assert admin("label", "summary", label, "--json").json()["archived"] is False
    assert admin("label", "archive-status", "2026-11_never_archived").code == ExitCode.NOT_FOUND


def test_campaign_submit_is_idempotent_and_failures_resubmit(admin: Cli, tmp_path: Path) -> None:
    _module(admin, tmp_path, "CliFails", "exit 3")
    label = "2026-11_cli_fails_v1"
    jobs_file = tmp_path / "jobs.json"
    jobs_file.write_text(
        json.dumps({"rat_v": "7.0.15", "modules": [{"module": "CliFails", "n_ev": 200, "ev_per_run": 100}]})
    )
    common = ("campaign", "submit", str(jobs_file), "--site", "local", "--label", label, "--experiment", "snoplus")

    dry = admin(*common, "--dry-run", "--json")
    assert dry.code == 0, dry.stderr
    assert dry.json()["jobs"] == 2 and admin("label", "summary", label).code == ExitCode.NOT_FOUND

    exactly = tmp_path / "all.exactly"
    first = admin(*common, "--exactly", str(exactly))
    assert first.code == 0, first.stderr
    assert "2 documents created" in first.stdout
    assert exactly.read_text() == "CliFails 1 1\nCliFails 2 1\n"
    second = admin(*common, "--json").json()
    assert second["created"] == 0 and second["jobs"] == 2

    watched = admin("label", "watch", label, "--interval", "0.5", "--timeout", "90")
    assert watched.code == ExitCode.WORK_FAILED, watched.stderr
    resubmitted = admin("label", "resubmit", label, "--json").json()
    assert len(resubmitted["job_ids"]) == 2 and resubmitted["pass"] == 2
    assert admin("label", "exactly", label, "--pass", "2").stdout == "CliFails 1 2\nCliFails 2 2\n"
    new_pass = admin("campaign", "show", resubmitted["campaign"], "--json").json()
    assert new_pass["pass"] == 2 and new_pass["jobs"] == 2
    assert admin("campaign", "cancel", resubmitted["campaign"], "--json").code == 0
    assert admin("label", "cancel", label, "--json").code == 0


def test_sites_drain_and_undrain(admin: Cli) -> None:
    sites = admin("site", "list", "--json").json()
    assert "local" in {s["name"] for s in sites}
    assert admin("site", "drain", "local", "--json").json()["drained"] is True
    assert admin("site", "show", "local", "--json").json()["drained"] is True
    assert admin("site", "undrain", "local", "--json").json()["drained"] is False
    assert admin("site", "show", "nowhere").code == ExitCode.NOT_FOUND


def test_cycle_init_install_run_logs_invalidate(admin: Cli, tmp_path: Path) -> None:
    from prodflow_cycle_runner.examples import make_example_repositories

    repos = make_example_repositories(tmp_path / "repos")
    made = admin("cycle", "init", "cli", "--dataflow", repos["dataflow"] + "@main", "--metadata", repos["metadata"])
    assert made.code == 0, made.stderr
    again = admin("cycle", "init", "cli", "--dataflow", repos["dataflow"], "--metadata", repos["metadata"])
    assert again.code == ExitCode.CONFLICT, again.stderr
    placed = admin("cycle", "init", "cli-slurm", "--dataflow", repos["dataflow"], "--metadata", repos["metadata"],
                   "--slurm-partition", "short", "--json")  # fmt: skip
    assert placed.json()["slurm"] == {"partition": "short", "account": None}
    installed = admin("cycle", "install", "cli", "--follow")
    assert installed.code == 0, installed.stderr + installed.stdout

    bad = admin("cycle", "run", "cli", "all-l200-p03-hit.gen", "-O", "forcerun; rm -rf /")
    assert bad.code == ExitCode.INVALID and "options" in bad.stderr

    dry = admin("cycle", "run", "cli", "all-l200-p03-r001-phy-dsp.gen", "-O", "dry-run", "--follow")
    assert dry.code == 0, dry.stderr
    assert "rule" in dry.stdout  # Snakemake's own log lines, streamed as they were written
    runs = admin("cycle", "runs", "cli", "--json").json()
    assert [r["kind"] for r in runs] == ["snakemake", "install"] and runs[0]["state"] == "succeeded"
    assert admin("cycle", "logs", "cli", runs[0]["id"]).stdout == dry.stdout
    assert "cli" in admin("cycle", "list").stdout

    plan = admin("cycle", "invalidate", "cli", "--target", "all-l200-p03-r001-phy-dsp.gen", "--json").json()
    assert plan["dry_run"] is True and plan["tiers"][0] == "dsp"

    changed = admin("cycle", "set", "cli", "setups.l200.pkg_versions.pygama=pygama==2.6.1")
    assert changed.code == 0, changed.stderr
    assert admin("cycle", "config", "cli").json()["setups"]["l200"]["pkg_versions"]["pygama"] == "pygama==2.6.1"
    escape = admin("cycle", "set", "cli", "setups.l200.paths.tier=/etc")
    assert escape.code == ExitCode.INVALID and "setups.l200.paths.tier" in escape.stderr


def test_a_draft_is_edited_then_cancelled(admin: Cli, tmp_path: Path) -> None:
    _module(admin, tmp_path, "CliDraft", WRITES_OUTPUT)
    draft = admin("request", "new", str(_request_form(tmp_path, "2026-11_cli_draft_v1", "CliDraft", 100)), "--json")
    assert draft.code == 0, draft.stderr
    request_id = draft.json()["id"]
    changes = tmp_path / "changes.yaml"
    changes.write_text("title: A better title\nlabel: 2026-11_cli_draft_v2\n")
    edited = admin("request", "edit", request_id, str(changes), "--json").json()
    assert edited["title"] == "A better title" and edited["label"] == "2026-11_cli_draft_v2"
    changes.write_text("colour: blue\n")
    refused = admin("request", "edit", request_id, str(changes))
    assert refused.code == ExitCode.INVALID and "colour" in refused.stderr
    assert admin("request", "list", "--state", "draft", "--json").json()["items"][0]["id"] == request_id
    assert admin("request", "cancel", request_id, "-m", "not needed", "--json").json()["state"] == "cancelled"
    history = admin("request", "show", request_id, "--json").json()["history"]
    assert history[-1] == {**history[-1], "state": "cancelled", "note": "not needed"}
    assert admin("request", "show", "req-999999").code == ExitCode.NOT_FOUND


def test_catalog_and_sites_are_edited_by_admins(admin: Cli, tmp_path: Path) -> None:
    made = admin("catalog", "set-experiment", "cli-exp", "--description", "test", "--mailing-list", "l@example.org")
    assert made.code == 0, made.stderr
    assert admin("catalog", "add-runs", "cli-exp", "100-104:water", "200").code == 0
    runs = admin("catalog", "runs", "cli-exp", "--json").json()
    water = [(run, "water") for run in range(100, 105)]
    assert [(r["run"], r["conditions"]) for r in runs["items"]] == [*water, (200, "")]
    assert admin("catalog", "delete-run", "cli-exp", "200").code == 0
    assert admin("catalog", "runs", "cli-exp", "--json").json()["total"] == 5
    assert admin("catalog", "add-runs", "cli-exp", "x-y").code == ExitCode.USAGE

    site = tmp_path / "site.yaml"
    site.write_text("backend: local\nstorage_element: file:///tmp/cli-site-se\nmax_running: 2\n")
    assert admin("site", "set", "cli-site", str(site), "--json").json()["max_running"] == 2
    assert admin("site", "delete", "cli-site").code == 0
    assert admin("site", "show", "cli-site").code == ExitCode.NOT_FOUND


def test_catalog_is_readable(admin: Cli) -> None:
    experiments = {e["experiment"] for e in admin("catalog", "list", "--json").json()}
    assert {"snoplus", "legend"} <= experiments
    runs = admin("catalog", "runs", "snoplus", "--limit", "5", "--json").json()
    assert len(runs["items"]) == 5 and runs["total"] >= 5
    modules = admin("catalog", "modules", "snoplus", "--json").json()
    assert "WaterBi214Run" in {m["name"] for m in modules}


def test_notifications_show_set_and_lists(admin: Cli) -> None:
    mine = admin("notifications", "set", "--address", "Root@Example.org", "--digest", "off", "--json")
    assert mine.code == 0, mine.stderr
    assert mine.json() == {
        "user": "admin",
        "address": "root@example.org",
        "approval": True,
        "outcome": True,
        "digest": False,
    }
    shown = admin("notifications", "show").stdout.splitlines()
    assert [line.split() for line in shown if line.startswith(("address", "digest"))] == [
        ["address", "root@example.org"],
        ["digest", "False"],
    ]
    bad = admin("notifications", "set", "--digest", "maybe")
    assert bad.code != 0
    lists = admin("notifications", "set-lists", "snoplus", "--support", "root@example.org", "--json").json()
    assert lists["support_list"] == ["root@example.org"] and lists["digest_to"] == []  # the admin opted out
    assert lists["opted_out"]["digest"] == ["root@example.org"]
    back = admin("notifications", "set-lists", "snoplus", "--support-is-mailing", "--json").json()
    assert back["support_list"] is None and back["digest_to"] == back["mailing_list"]
