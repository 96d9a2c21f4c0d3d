"""Service accounts: one CouchDB user per service, a member (not an admin) of the databases it uses.

On CouchDB 3 a server admin creates the user in ``_users`` and lists it in each database's ``_security``; the
service then runs with that account (``PRODFLOW_COUCHDB_USER``/``PRODFLOW_COUCHDB_PASSWORD``). A member reads and
writes documents (``_local`` ones too) and queries views, but cannot create databases, write design documents or
change ``_security``. The services that keep design documents in a database (submitter and monitor, in the job
databases) are therefore that database's admins: still no server admin, no other database, no ``_users``, no
creating or deleting databases. Creating the databases stays with the admin step, which runs before the services
start (``prodflow up --member-accounts`` does it). PouchDB Server (the embedded default) stores ``_users`` and
``_security`` documents but enforces neither: there every client is an admin.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from prodflow_core.couch.client import CouchClient
from prodflow_core.couch.database import Doc
from prodflow_core.jobdocs import JOB_DATABASES

USERS_DB = "_users"


def user_doc_id(name: str) -> str:
    """The ``_users`` document id of CouchDB user ``name``."""
    return f"org.couchdb.user:{name}"


async def ensure_user(admin: CouchClient, name: str, password: str) -> None:
    """Create CouchDB user ``name`` (no roles), or set its password if it exists. Needs a server admin."""

    def with_password(current: Doc) -> Doc:
        return {**current, "name": name, "password": password, "roles": current.get("roles", []), "type": "user"}

    await admin.db(USERS_DB).update(user_doc_id(name), with_password)


async def add_to_security(admin: CouchClient, database: str, name: str, *, section: str = "members") -> bool:
    """Put user ``name`` in the ``members`` (or ``admins``) of ``database``; False if it was there already.

    Once a database has members, other non-admin users can no longer read or write it. A database admin may
    also write design documents, run ``_view_cleanup`` and edit ``_security``, but not create or delete the
    database. The database must exist.
    """
    path = f"{quote(database, safe='')}/_security"
    security: dict[str, Any] = await admin.request("GET", path) or {}
    for part in ("admins", "members"):
        security.setdefault(part, {}).setdefault("names", [])
        security[part].setdefault("roles", [])
    names: list[str] = security[section]["names"]
    if name in names:
        return False
    names.append(name)
    await admin.request("PUT", path, json_body=security)
    return True


async def add_member(admin: CouchClient, database: str, name: str, *, shards: int | None = None) -> bool:
    """Put user ``name`` in the ``members`` of ``database`` (created with ``shards`` if absent); False if it was
    there already."""
    await admin.db(database).ensure(shards=shards)
    return await add_to_security(admin, database, name)


async def ensure_member_account(admin: CouchClient, name: str, password: str, databases: Iterable[str]) -> None:
    """User ``name`` with ``password``, a member of every database in ``databases`` (each created if absent)."""
    await ensure_user(admin, name, password)
    for database in databases:
        await add_member(admin, database, name)


@dataclass(frozen=True)
class ServiceAccount:
    """The CouchDB account of one service: the databases it is a member of, and those it administers."""

    service: str
    member_of: tuple[str, ...]
    admin_of: tuple[str, ...] = ()

    @property
    def user(self) -> str:
        return f"prodflow-{self.service}"


def service_accounts(events_db: str, job_databases: Iterable[str] = JOB_DATABASES) -> list[ServiceAccount]:
    """Who needs what: every service writes the event stream; submitter and monitor own the job databases.

    They administer them (not just members) because each writes its design documents there at start, and
    monitor deletes retired ones and asks for ``_view_cleanup``; members cannot do either.
    """
    jobs = tuple(job_databases)
    return [
        ServiceAccount("gateway", (events_db,)),
        ServiceAccount("request-api", (events_db,)),
        ServiceAccount("submitter", (events_db, *jobs), admin_of=jobs),
        ServiceAccount("monitor", (events_db, *jobs), admin_of=jobs),
        ServiceAccount("cycle-runner", (events_db,)),
        ServiceAccount("notifier", (events_db,)),  # reads the stream; its checkpoint is in its own SQL
    ]


async def set_up_service_accounts(
    admin: CouchClient,
    accounts: Iterable[ServiceAccount],
    passwords: Mapping[str, str],
    *,
    events_db: str,
    job_shards: int | None = None,
) -> None:
    """The admin step: create the event stream (one shard) and every account's databases (the job databases,
    which the accounts administer, of ``job_shards``), the users (with ``passwords`` by service) and their places
    in each ``_security``. Idempotent; passwords are set anew."""
    await admin.db(events_db).ensure(shards=1)  # one shard: consumers see events in the order they were stored
    for account in accounts:
        await ensure_user(admin, account.user, passwords[account.service])
        for database in account.member_of:
            shards = job_shards if database in account.admin_of else None
            await add_member(admin, database, account.user, shards=shards)
        for database in account.admin_of:
            await add_to_security(admin, database, account.user, section="admins")
