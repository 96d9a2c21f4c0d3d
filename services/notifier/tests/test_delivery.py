"""Deliveries to a real receiver: once each and in order, through an outage, retried with growing pauses, failing
after the give-up time and resumed, replayed, signed with two secrets during a rotation."""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path

import pytest
from notifier_support import ADMIN, Notifier, Receiver, events_db, flow_events, make_settings, running, wait_until
from prodflow_core.couch.client import CouchClient
from prodflow_core.events import make_event

pytestmark = pytest.mark.integration


@pytest.mark.both_couch
async def test_events_of_a_production_flow_arrive_once_each_in_order(
    tmp_path: Path, couch: CouchClient, couch_target: str
) -> None:
    db = await events_db(couch)
    receiver = Receiver()
    flow = flow_events()
    other = make_event("job.completed", "/services/monitor", experiment="legend", data={"label": "l200-p03"})
    try:
        with receiver.serving():
            async with running(make_settings(tmp_path, couch_target, db.name)) as notifier:
                made = await notifier.subscribe(receiver.url, event_types=["org.prodflow.*"])
                receiver.secrets.append(made["secret"])
                for event in flow[:4]:  # one at a time, as services emit them
                    await notifier.events.publish(event)
                await notifier.events.publish(other)  # another experiment's: not for this subscription
                await notifier.events.publish_many(flow[4:])  # and a bulk write
                await wait_until(lambda: len(receiver.ids()) >= len(flow), what="every event")
                # the receiver answered the last one; its outcome is written right after
                await wait_until(lambda: _pending(notifier, f"/api/webhooks/{made['id']}", 0), what="the last commit")
                answer = await notifier.client.get(f"/api/webhooks/{made['id']}/deliveries", headers=_admin())
        assert receiver.ids() == [event.id for event in flow]
        assert all(r.verified and r.signatures == 1 for r in receiver.got)
        assert receiver.got[1].body["type"] == "org.prodflow.request.approved"
        assert receiver.got[1].body["data"]["label"] == "2026-12_Hello_v1"
        attempts = answer.json()["items"]
        assert len(attempts) == len(flow) and {a["status_code"] for a in attempts} == {200}
        assert attempts[0]["event_id"] == flow[-1].id and attempts[0]["latency_ms"] > 0
    finally:
        await db.drop()


async def test_type_globs_and_labels_filter_events(tmp_path: Path, couch_url: str) -> None:
    async with CouchClient(couch_url) as couch:
        db = await events_db(couch)
        receiver = Receiver()
        flow = flow_events() + flow_events(label="2026-12_Other_v1")
        wanted = [
            e.id for e in flow if e.type.startswith("org.prodflow.job.") and e.data.get("label") == "2026-12_Hello_v1"
        ]
        with receiver.serving():
            async with running(make_settings(tmp_path, couch_url, db.name)) as notifier:
                made = await notifier.subscribe(
                    receiver.url, event_types=["org.prodflow.job.*"], labels=["2026-12_Hello_v1"]
                )
                receiver.secrets.append(made["secret"])
                await notifier.events.publish_many(flow)
                await wait_until(lambda: len(receiver.ids()) >= len(wanted), what="the job events")
        assert receiver.ids() == wanted
        await db.drop()


async def test_a_receiver_down_for_a_while_gets_everything_in_order_when_back(tmp_path: Path, couch_url: str) -> None:
    async with CouchClient(couch_url) as couch:
        db = await events_db(couch)
        receiver = Receiver()  # its port is reserved but nothing listens yet
        flow = flow_events()
        async with running(make_settings(tmp_path, couch_url, db.name)) as notifier:
            made = await notifier.subscribe(receiver.url)
            receiver.secrets.append(made["secret"])
            await notifier.events.publish_many(flow[:6])
            path = f"/api/webhooks/{made['id']}/deliveries"

            async def failed_three_times() -> bool:
                items = (await notifier.client.get(path, headers=_admin())).json()["items"]
                return len(items) >= 3

            await wait_until(failed_three_times, what="three failed attempts")
            items = (await notifier.client.get(path, headers=_admin())).json()["items"]
            assert all(i["status_code"] is None and "Connect" in i["error"] for i in items)
            assert {i["event_id"] for i in items} == {flow[0].id}  # head of line: nothing newer went first
            await notifier.events.publish_many(flow[6:])
            with receiver.serving():
                await wait_until(lambda: len(receiver.ids()) >= len(flow), what="every event after the outage")
        assert receiver.ids() == [e.id for e in flow]
        assert all(r.verified for r in receiver.got)
        await db.drop()


async def test_a_receiver_answering_500_is_retried_with_growing_pauses(tmp_path: Path, couch_url: str) -> None:
    async with CouchClient(couch_url) as couch:
        db = await events_db(couch)
        receiver = Receiver(answer=lambda n: 500 if n < 5 else 204)
        event = flow_events()[0]
        settings = make_settings(tmp_path, couch_url, db.name, retry_base_s=0.2, retry_max_s=10.0)
        with receiver.serving():
            async with running(settings) as notifier:
                made = await notifier.subscribe(receiver.url)
                receiver.secrets.append(made["secret"])
                await notifier.events.publish(event)
                await wait_until(lambda: len(receiver.accepted_ids()) == 1, what="the sixth attempt's 204")
                await wait_until(lambda: _pending(notifier, f"/api/webhooks/{made['id']}", 0), what="its commit")
                items = (await notifier.client.get(f"/api/webhooks/{made['id']}/deliveries", headers=_admin())).json()
        times = [r.at for r in receiver.got]
        gaps = [b - a for a, b in itertools.pairwise(times)]
        assert len(gaps) == 5
        # pause n is in [cap_n/2, cap_n] with cap doubling from 0.2 s: never shorter than the one before
        for shorter, longer in itertools.pairwise(gaps):
            assert longer >= shorter * 0.9, gaps
        assert gaps[-1] > 2 * gaps[0], gaps
        assert gaps[0] >= 0.09
        statuses = [i["status_code"] for i in reversed(items["items"])]
        assert statuses == [500, 500, 500, 500, 500, 204]
        assert [i["attempt"] for i in reversed(items["items"])] == [1, 2, 3, 4, 5, 6]
        await db.drop()


async def test_after_the_give_up_time_a_subscription_is_failing_until_re_enabled(
    tmp_path: Path, couch_url: str
) -> None:
    async with CouchClient(couch_url) as couch:
        db = await events_db(couch)
        receiver = Receiver(status=500)
        flow = flow_events()[:3]
        settings = make_settings(tmp_path, couch_url, db.name, give_up_after_s=0.5, retry_base_s=0.1, retry_max_s=0.2)
        with receiver.serving():
            async with running(settings) as notifier:
                made = await notifier.subscribe(receiver.url)
                receiver.secrets.append(made["secret"])
                path = f"/api/webhooks/{made['id']}"
                await notifier.events.publish_many(flow)

                async def failing() -> bool:
                    return (await notifier.client.get(path, headers=_admin())).json()["state"] == "failing"

                await wait_until(failing, what="the subscription to be marked failing")
                shown = (await notifier.client.get(path, headers=_admin())).json()
                assert shown["pending"] == 3 and shown["failing_since"]
                tries = len(receiver.ids())
                late = flow_events()[3]
                await notifier.events.publish(late)  # still queued while failing
                await wait_until(lambda: _pending(notifier, path, 4), what="the event queued while failing")
                await asyncio.sleep(2 * settings.poll_s)  # polls pass: nothing is attempted while failing
                assert len(receiver.ids()) == tries
                receiver.status = 200
                answer = await notifier.client.patch(path, json={"active": True}, headers=_admin())
                assert answer.status_code == 200 and answer.json()["state"] == "ok"
                await wait_until(lambda: len(receiver.accepted_ids()) == 4, what="the queue after re-enabling")
        assert receiver.accepted_ids() == [e.id for e in flow] + [late.id]
        await db.drop()


@pytest.mark.both_couch
async def test_replay_delivers_again_from_an_event_on_in_order(
    tmp_path: Path, couch: CouchClient, couch_target: str
) -> None:
    db = await events_db(couch)
    receiver = Receiver()
    flow = flow_events()
    try:
        with receiver.serving():
            async with running(make_settings(tmp_path, couch_target, db.name)) as notifier:
                made = await notifier.subscribe(receiver.url)
                receiver.secrets.append(made["secret"])
                await notifier.events.publish_many(flow)
                await wait_until(lambda: len(receiver.ids()) == len(flow), what="every event")
                path = f"/api/webhooks/{made['id']}/replay"
                answer = await notifier.client.post(path, json={"from_event_id": flow[5].id}, headers=_admin())
                assert answer.status_code == 200 and answer.json() == {"queued": len(flow) - 5}
                await wait_until(lambda: len(receiver.ids()) == 2 * len(flow) - 5, what="the replayed events")
                missing = await notifier.client.post(path, json={"from_event_id": "evt-NOSUCH"}, headers=_admin())
                assert missing.status_code == 404
        assert receiver.ids() == [e.id for e in flow] + [e.id for e in flow[5:]]
    finally:
        await db.drop()


async def test_a_rotated_secret_signs_beside_the_old_one_during_the_overlap(tmp_path: Path, couch_url: str) -> None:
    async with CouchClient(couch_url) as couch:
        db = await events_db(couch)
        old_receiver, new_receiver = Receiver(), Receiver()
        flow = flow_events()[:2]
        with old_receiver.serving(), new_receiver.serving():
            async with running(make_settings(tmp_path, couch_url, db.name)) as notifier:
                made = await notifier.subscribe(old_receiver.url)
                old_receiver.secrets.append(made["secret"])
                rotated = await notifier.client.post(f"/api/webhooks/{made['id']}/rotate-secret", headers=_admin())
                assert rotated.status_code == 200 and rotated.json()["previous_valid_until"]
                new_secret = rotated.json()["secret"]
                assert new_secret != made["secret"] and new_secret.startswith("whsec_")
                new_receiver.secrets.append(new_secret)
                patched = await notifier.client.patch(
                    f"/api/webhooks/{made['id']}", json={"url": new_receiver.url}, headers=_admin()
                )
                assert patched.status_code == 200
                await notifier.events.publish(flow[0])
                await wait_until(lambda: new_receiver.ids() == [flow[0].id], what="a delivery after the rotation")
                # both signatures are there: a receiver still on the old secret verifies it too
                assert new_receiver.got[0].signatures == 2 and new_receiver.got[0].verified
                new_receiver.secrets[:] = [made["secret"]]
                await notifier.client.post(
                    f"/api/webhooks/{made['id']}/rotate-secret", json={"overlap_s": 0}, headers=_admin()
                )
                await notifier.events.publish(flow[1])
                await wait_until(
                    lambda: len(new_receiver.ids()) == 2, what="a delivery after a rotation without overlap"
                )
        assert new_receiver.got[1].signatures == 1 and not new_receiver.got[1].verified
        await db.drop()


async def test_a_redirect_is_a_failure_and_not_followed(tmp_path: Path, couch_url: str) -> None:
    async with CouchClient(couch_url) as couch:
        db = await events_db(couch)
        receiver = Receiver(status=307)
        with receiver.serving():
            async with running(make_settings(tmp_path, couch_url, db.name)) as notifier:
                made = await notifier.subscribe(receiver.url)
                await notifier.events.publish(flow_events()[0])
                path = f"/api/webhooks/{made['id']}/deliveries"

                async def attempted() -> bool:
                    return bool((await notifier.client.get(path, headers=_admin())).json()["items"])

                await wait_until(attempted, what="an attempt")
                item = (await notifier.client.get(path, headers=_admin())).json()["items"][-1]
        assert item["status_code"] == 307 and "redirects are not followed" in item["error"]
        await db.drop()


def _admin() -> dict[str, str]:
    return ADMIN


async def _pending(notifier: Notifier, path: str, count: int) -> bool:
    return bool((await notifier.client.get(path, headers=ADMIN)).json()["pending"] == count)
