"""Kept counts through monitor crashes: two campaigns (10,000 jobs) with automatic retries, cancels, next-attempt
and next-pass resubmissions, while the monitor is SIGKILLed at random moments and started again.

Afterwards every label's kept counts equal a full reduce of its job documents (``?verify=true``), the monitor's
``/metrics`` job gauges and every campaign's kept counts (submitter) equal the documents counted by hand: no change
counted twice or missed.
"""

from __future__ import annotations

import collections
import random
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from faults.fault_support import admin_client, crash, running_system, tolerant
from prodflow_cli.runner import SERVICES, EmbeddedSystem
from system_support import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.faults, pytest.mark.timeout(900)]

MODULE = "CountsToy"
DATABASE = "data-production"
LABELS = {"2026-12_counts_a": range(400000, 400060), "2026-12_counts_b": range(500000, 500040)}  # x 100 chunks
JOBS = sum(len(runs) for runs in LABELS.values()) * 100
FINAL = {"completed", "failed", "cancelled"}
FAIL_EXIT = 3  # a run divisible by 7 exits 3: retried by the site's policy, then failed for good


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedSystem]:
    with running_system(tmp_path_factory.mktemp("faults-counts")) as running:
        yield running


def _prepare(admin: httpx.Client) -> None:
    module = {
        "description": "counts fault test payload: fails on runs divisible by 7",
        "event_modes": ["run_by_run_events"],
        "kinds": ["production"],
        "command": f"test $(( {{run}} % 7 )) -ne 0 || exit {FAIL_EXIT}; echo {{events}} > r{{run}}_s{{chunk}}.dat",
        "default_ev_per_run": 100,
    }
    assert admin.put(f"/api/catalog/snoplus/modules/{MODULE}", json=module).status_code in (200, 201)
    site = admin.get("/api/sites/local").json()
    spec = {k: site[k] for k in ("backend", "storage_element", "queue_order")}
    options = {**site["options"], "max_running": 12}
    spec.update(max_running=1000, max_attempts=2, retry_exit_codes=[FAIL_EXIT], options=options)
    assert admin.put("/api/sites/local", json=spec).status_code == 200


def _create(admin: httpx.Client, label: str, runs: range) -> str:
    jobs = {
        "rat_v": "7.0.15",
        "experiment": "snoplus",
        "kind": "production",
        "label": label,
        "modules": [{"module": MODULE, "n_ev": 10_000, "ev_per_run": 100, "run_numbers": list(runs)}],
    }
    created = admin.post("/api/campaigns", json={"jobs": jobs, "site": "local"})
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


def _docs(couch_url: str) -> list[dict[str, Any]]:
    rows = httpx.get(f"{couch_url}/{DATABASE}/_all_docs", params={"include_docs": "true"}, timeout=300).json()
    return [row["doc"] for row in rows["rows"] if row["doc"].get("type") == "job"]


def _ids(docs: list[dict[str, Any]], label: str, status: str) -> list[str]:
    return sorted(d["_id"] for d in docs if d["label"] == label and d["status"] == status)


class _MonitorKiller(threading.Thread):
    """SIGKILLs the monitor at random moments (seeded: the same moments every run), ``times`` times at most."""

    def __init__(self, system: EmbeddedSystem, seed: int = 12, times: int = 6) -> None:
        super().__init__(daemon=True)
        self.system = system
        self.random = random.Random(seed)
        self.stopping = threading.Event()
        self.times = times
        self.kills: list[float] = []

    def run(self) -> None:
        while len(self.kills) < self.times and not self.stopping.wait(self.random.uniform(3.0, 15.0)):
            self.kills.append(crash(self.system, "monitor", down_s=self.random.uniform(0.2, 2.0)))

    def stop(self) -> None:
        self.stopping.set()
        self.join(60)


def test_kept_counts_equal_a_full_reduce_after_monitor_crashes(system: EmbeddedSystem) -> None:
    assert system.couch is not None
    couch_url = system.couch.url
    (label_a, runs_a), (label_b, runs_b) = LABELS.items()
    killer = _MonitorKiller(system)
    with admin_client(system) as admin:
        _prepare(admin)
        campaigns = [_create(admin, label_a, runs_a)]
        killer.start()
        campaigns.append(_create(admin, label_b, runs_b))

        # Cancel 500 of label b's jobs that have not run yet.
        waiting = wait_for(lambda: _ids(_docs(couch_url), label_b, "waiting")[:500] or None, 120, "waiting jobs")
        body = {"database": DATABASE, "job_ids": waiting, "reason": "counts test"}
        assert admin.post(f"/api/campaigns/by-label/{label_b}/cancel", json=body).is_success

        def summary_counts(label: str) -> dict[str, int]:
            found = tolerant(lambda: admin.get(f"/api/labels/{label}/summary").json())
            return dict(found["counts"]) if isinstance(found, dict) and "counts" in found else {}

        def failed_for_good(label: str, least: int) -> list[str] | None:
            # The kept counts tell when to look (cheap); the documents say which jobs (read once).
            if summary_counts(label).get("failed", 0) < least:
                return None
            ids = _ids(_docs(couch_url), label, "failed")
            return ids if len(ids) >= least else None

        # Failures of label a come back as a next attempt; those of label b as a next pass (new documents).
        failed_a = wait_for(lambda: failed_for_good(label_a, 100), 600, "failures of label a", every_s=1.0)
        body = {"database": DATABASE, "mode": "next_attempt", "job_ids": failed_a[:100]}
        assert tolerant(lambda: admin.post(f"/api/campaigns/by-label/{label_a}/resubmit", json=body).is_success)
        failed_b = wait_for(lambda: failed_for_good(label_b, 100), 600, "failures of label b", every_s=1.0)
        body = {"database": DATABASE, "mode": "next_pass", "job_ids": failed_b[:100]}
        resubmitted = admin.post(f"/api/campaigns/by-label/{label_b}/resubmit", json=body)
        assert resubmitted.is_success, resubmitted.text
        campaigns.append(str(resubmitted.json()["campaign"]))

        def all_final() -> list[dict[str, Any]] | None:
            if not all(set(summary_counts(label)) <= FINAL for label in LABELS):
                return None
            docs = _docs(couch_url)
            return docs if len(docs) >= JOBS and all(d["status"] in FINAL for d in docs) else None

        docs = wait_for(all_final, 800, "every job final", every_s=2.0)
        killer.stop()
        assert len(killer.kills) >= 3, f"the monitor was killed only {len(killer.kills)} times"

        for label in LABELS:

            def consistent(label: str = label) -> dict[str, Any] | None:
                found = tolerant(lambda: admin.get(f"/api/labels/{label}/summary", params={"verify": "true"}).json())
                return found if isinstance(found, dict) and found["verification"]["consistent"] else None

            summary = wait_for(consistent, 120, f"kept counts of {label} equal to a full reduce", every_s=1.0)
            by_hand = collections.Counter(d["status"] for d in docs if d["label"] == label)
            assert summary["counts"] == dict(by_hand), (label, summary["counts"], by_hand)

        monitor = system.url_of(next(spec for spec in SERVICES if spec.name == "monitor"))
        by_status = collections.Counter(d["status"] for d in docs)

        def gauges_agree() -> bool | None:  # /metrics: the kept totals by database and status
            text = tolerant(lambda: httpx.get(f"{monitor}/metrics", timeout=30).text)
            wanted = (f'prodflow_jobs{{database="{DATABASE}",status="{s}"}} {n:.1f}' for s, n in by_status.items())
            return True if isinstance(text, str) and all(line in text for line in wanted) else None

        wait_for(gauges_agree, 60, "the /metrics job gauges equal to the documents", every_s=1.0)

        for campaign in campaigns:
            by_hand = collections.Counter(d["status"] for d in docs if d["campaign_id"] == campaign)

            def agrees(campaign: str = campaign, by_hand: Any = by_hand) -> bool | None:
                kept = tolerant(lambda: admin.get(f"/api/campaigns/{campaign}").json()["counts"])
                return True if kept == dict(by_hand) else None

            wait_for(agrees, 60, f"kept counts of {campaign} equal to its documents", every_s=1.0)
    statuses = collections.Counter(d["status"] for d in docs)
    assert statuses["cancelled"] >= 500 and statuses["failed"] >= 100 and statuses["completed"] > JOBS // 2, statuses
    assert any(d["pass"] == 2 for d in docs) and any(d["attempt"] >= 3 for d in docs)
    print(f"monitor killed {len(killer.kills)} times; final statuses {dict(statuses)}")
