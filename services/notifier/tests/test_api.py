"""``/api/webhooks``: roles and experiments, the secret shown once, problems for bad input, patch and delete."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from notifier_support import (
    ADMIN,
    MANAGER,
    READER,
    Receiver,
    events_db,
    flow_events,
    headers,
    make_settings,
    running,
    wait_until,
)
from prodflow_core.couch.client import CouchClient

pytestmark = pytest.mark.integration


async def test_managers_manage_their_experiments_webhooks_admins_all(tmp_path: Path, couch_url: str) -> None:
    async with CouchClient(couch_url) as couch:
        db = await events_db(couch)
        url = Receiver().url
        async with running(make_settings(tmp_path, couch_url, db.name)) as notifier:
            client = notifier.client
            mine = await notifier.subscribe(url, as_=MANAGER, description="SNO+ dashboard")
            assert mine["secret"].startswith("whsec_") and mine["owner"] == "maria" and mine["state"] == "ok"
            legend = await notifier.subscribe(url, experiments=["legend"])
            everything = await notifier.subscribe(url, experiments=[])
            body = {"url": url, "event_types": ["org.prodflow.*"]}
            for experiments, who in (([], MANAGER), (["legend"], MANAGER), (["snoplus"], READER)):
                answer = await client.post("/api/webhooks", json={**body, "experiments": experiments}, headers=who)
                assert answer.status_code == 403, answer.text
            assert (await client.post("/api/webhooks", json=body)).status_code == 401
            listed = (await client.get("/api/webhooks", headers=MANAGER)).json()["items"]
            assert [w["id"] for w in listed] == [mine["id"]]
            assert "secret" not in listed[0]
            every = (await client.get("/api/webhooks", headers=ADMIN)).json()["items"]
            assert {w["id"] for w in every} == {mine["id"], legend["id"], everything["id"]}
            assert (await client.get(f"/api/webhooks/{legend['id']}", headers=MANAGER)).status_code == 403
            shown = (await client.get(f"/api/webhooks/{mine['id']}", headers=MANAGER)).json()
            assert "secret" not in shown and shown["description"] == "SNO+ dashboard"
            other = headers("lena", "manager", experiments=("legend",))
            moved = await client.patch(f"/api/webhooks/{mine['id']}", json={"experiments": ["legend"]}, headers=MANAGER)
            assert moved.status_code == 403  # a manager cannot hand a webhook to an experiment not theirs
            assert (await client.delete(f"/api/webhooks/{mine['id']}", headers=other)).status_code == 403
            assert (await client.delete(f"/api/webhooks/{mine['id']}", headers=MANAGER)).status_code == 204
            assert (await client.get(f"/api/webhooks/{mine['id']}", headers=MANAGER)).status_code == 404
        await db.drop()


async def test_bad_input_is_a_problem(tmp_path: Path, couch_url: str) -> None:
    async with CouchClient(couch_url) as couch:
        db = await events_db(couch)
        url = Receiver().url
        async with running(make_settings(tmp_path, couch_url, db.name)) as notifier:
            client = notifier.client
            good = {"url": url, "event_types": ["org.prodflow.job.*"], "experiments": ["snoplus"]}
            for bad in (
                {**good, "secret": "whsec_mine"},  # unknown field
                {**good, "event_types": []},
                {**good, "event_types": ["org prodflow"]},
                {**good, "experiments": ["SNO+"]},
                {**good, "active": "true"},
                {k: v for k, v in good.items() if k != "url"},
            ):
                answer = await client.post("/api/webhooks", json=bad, headers=ADMIN)
                assert answer.status_code == 422, bad
                assert answer.headers["content-type"].startswith("application/problem+json")
            made = await notifier.subscribe(url)
            path = f"/api/webhooks/{made['id']}"
            assert (await client.patch(path, json={"active": 1}, headers=ADMIN)).status_code == 422
            assert (await client.post(f"{path}/replay", json={"from_event_id": "x"}, headers=ADMIN)).status_code == 422
            assert (await client.get("/api/webhooks/wh-0000000000000000", headers=ADMIN)).status_code == 404
            patched = await client.patch(path, json={"active": False, "labels": ["2026-12_Hello_v1"]}, headers=ADMIN)
            assert patched.status_code == 200
            assert patched.json()["active"] is False and patched.json()["labels"] == ["2026-12_Hello_v1"]
        await db.drop()


async def test_secrets_are_shown_once_and_never_logged(tmp_path: Path, couch_url: str) -> None:
    records: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(self.format(record))

    async with CouchClient(couch_url) as couch:
        db = await events_db(couch)
        receiver = Receiver(answer=lambda n: 500 if n == 0 else 200)
        keep = Keep()
        settings = make_settings(tmp_path, couch_url, db.name, log_level="DEBUG")
        with receiver.serving():
            async with running(settings) as notifier:
                logging.getLogger().addHandler(keep)  # after the app set the root logger up (DEBUG: everything)
                try:
                    made = await notifier.subscribe(receiver.url)
                    path = f"/api/webhooks/{made['id']}"
                    rotated = (await notifier.client.post(f"{path}/rotate-secret", headers=ADMIN)).json()
                    receiver.secrets += [made["secret"], rotated["secret"]]
                    await notifier.events.publish_many(flow_events()[:3])
                    await wait_until(lambda: len(receiver.accepted_ids()) == 3, what="the deliveries")
                    answers = [
                        (await notifier.client.get(p, headers=ADMIN)).text
                        for p in ("/api/webhooks", path, f"{path}/deliveries")
                    ]
                    await notifier.client.patch(path, json={"description": "x"}, headers=ADMIN)
                finally:
                    logging.getLogger().removeHandler(keep)
        assert records, "nothing was logged at DEBUG"
        for secret in (made["secret"], rotated["secret"]):
            key = secret.removeprefix("whsec_")
            assert not [r for r in records if key in r]
            assert not [a for a in answers if key in a]
        assert all(r.signatures == 2 and r.verified for r in receiver.got)  # both secrets sign during the overlap
        await db.drop()
