"""Member accounts: one CouchDB user per service, a member (not an admin) of the databases it uses.

On CouchDB 3 a server admin creates the user in ``_users`` and lists it in each database's ``_security``
``members``; the service then runs with that account. A member reads and writes documents (``_local`` ones
too) and reads views, but cannot create databases, write design documents or change ``_security``: those stay
with the admin step, which must therefore run (with admin credentials) before the services start and again
whenever a release changes a design document. PouchDB Server accepts ``_users`` and ``_security`` documents
but enforces neither: there every client is an admin.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from urllib.parse import quote

from prodflow_core.couch.client import CouchClient, Doc

USERS_DB = "_users"


def user_doc_id(name: str) -> str:
    """The ``_users`` document id of CouchDB user ``name``."""
    return f"org.couchdb.user:{name}"


async def ensure_user(admin: CouchClient, name: str, password: str) -> None:
    """Create CouchDB user ``name`` (no roles), or set its password if it exists. Needs a server admin."""

    def with_password(current: Doc) -> Doc:
        return {**current, "name": name, "password": password, "roles": current.get("roles", []), "type": "user"}

    await admin.db(USERS_DB).update(user_doc_id(name), with_password)


async def add_member(admin: CouchClient, database: str, name: str) -> bool:
    """Put user ``name`` in the ``members`` of ``database`` (created if absent); False if it was there already.

    Once a database has members, other non-admin users can no longer read or write it.
    """
    db = admin.db(database)
    await db.ensure()
    path = f"{quote(database, safe='')}/_security"
    security: dict[str, Any] = await admin.request("GET", path) or {}
    members = security.setdefault("members", {})
    names: list[str] = members.setdefault("names", [])
    if name in names:
        return False
    names.append(name)
    security.setdefault("admins", {"names": [], "roles": []})
    members.setdefault("roles", [])
    await admin.request("PUT", path, json_body=security)
    return True


async def ensure_member_account(admin: CouchClient, name: str, password: str, databases: Iterable[str]) -> None:
    """User ``name`` with ``password``, a member of every database in ``databases`` (each created if absent)."""
    await ensure_user(admin, name, password)
    for database in databases:
        await add_member(admin, database, name)
