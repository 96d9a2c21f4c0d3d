"""``prodflow up --member-accounts``: the admin step of the embedded runner, on PouchDB Server and CouchDB 3.5."""

from __future__ import annotations

from pathlib import Path

import pytest
from prodflow_cli.runner import SERVICES, EmbeddedSystem, RunnerError
from prodflow_core.couch import CouchClient
from prodflow_core.credentials import split_userinfo

pytestmark = [pytest.mark.integration, pytest.mark.both_couch]


async def test_each_service_gets_its_own_account_on_couchdb_only(couch_target: str, tmp_path: Path) -> None:
    events_db = f"events-{tmp_path.name[-12:]}".lower()
    system = EmbeddedSystem(data_dir=tmp_path, member_accounts=True)
    system.env = {"PRODFLOW_EVENTS_DB": events_db, "SUBMITTER_JOB_DATABASE_PREFIX": f"{events_db}-"}
    async with CouchClient(couch_target) as admin:
        real_couchdb = "couchdb" in await admin.info()
    if not real_couchdb:
        with pytest.raises(RunnerError, match="PouchDB Server enforces no _security"):
            await system.set_up_member_accounts(couch_target)
        return

    service_env = await system.set_up_member_accounts(couch_target)
    assert set(service_env) == {spec.name for spec in SERVICES}
    bare = split_userinfo(couch_target)[0]
    for service, env in service_env.items():
        assert env["PRODFLOW_COUCHDB_URL"] == bare  # no admin credentials handed to a service
        assert env["PRODFLOW_COUCHDB_USER"] == f"prodflow-{service}"
        async with CouchClient(bare, auth=(env["PRODFLOW_COUCHDB_USER"], env["PRODFLOW_COUCHDB_PASSWORD"])) as client:
            session = await client.request("GET", "_session")
            assert session["userCtx"]["name"] == f"prodflow-{service}" and "_admin" not in session["userCtx"]["roles"]
            await client.db(events_db).put({"_id": f"written-by-{service}"})
    async with CouchClient(couch_target) as admin:
        security = await admin.request("GET", f"{events_db}-data-production/_security")
        assert security["admins"]["names"] == ["prodflow-submitter", "prodflow-monitor"]
        assert set(security["members"]["names"]) == {"prodflow-submitter", "prodflow-monitor"}

    member = service_env["gateway"]
    not_admin = f"http://{member['PRODFLOW_COUCHDB_USER']}:{member['PRODFLOW_COUCHDB_PASSWORD']}@{bare.split('//')[1]}"
    with pytest.raises(RunnerError, match="server admin"):
        await system.set_up_member_accounts(not_admin)
