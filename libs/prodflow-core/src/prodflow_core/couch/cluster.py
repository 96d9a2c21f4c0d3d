"""A real CouchDB 3.5 cluster of several nodes on loopback, for the tests of what prodflow needs from a cluster.

Each node is a :class:`LocalCouchDB3Server` of the release in ``../shared/couchdb`` with ``single_node = false``
and the same ``[cluster]`` settings, admin, ``uuid`` and cookie secret. The first node adds the others to its
``_nodes`` database (the manual way of CouchDB's cluster set-up guide, the same as ``_cluster_setup``'s
``add_node``), then creates the system databases, which makes them span every node. Erlang distribution stays
on 127.0.0.1 (the release's ``vm.args`` binds it there) and the nodes share the user's ``~/.erlang.cookie``.
"""

from __future__ import annotations

import contextlib
import secrets
import tempfile
import time
from pathlib import Path

import httpx

from prodflow_core.couch.couchdb3 import LocalCouchDB3Server
from prodflow_core.couch.server import CouchServerError

SYSTEM_DATABASES = ("_users", "_replicator")


class LocalCouchDB3Cluster:
    """``size`` CouchDB 3.5 nodes joined into one cluster of ``n`` copies and ``q`` shards per database."""

    def __init__(self, size: int = 3, *, n: int = 3, q: int = 2, data_dir: Path | None = None) -> None:
        if not 1 <= n <= size:
            raise ValueError(f"n={n} copies need 1..{size} nodes")
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if data_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="prodflow-couchdb3-cluster-")
            data_dir = Path(self._tmp.name)
        password = secrets.token_urlsafe(18)
        config = (
            f"[cluster]\nn = {n}\nq = {q}\n\n"
            f"[couchdb]\nuuid = {secrets.token_hex(16)}\n\n"
            f"[chttpd_auth]\nsecret = {secrets.token_hex(16)}\n"
        )
        self.nodes = [
            LocalCouchDB3Server(data_dir=data_dir / f"node{i}", password=password, cluster_config=config)
            for i in range(size)
        ]

    @property
    def urls(self) -> list[str]:
        """Each node's URL with the admin credentials; any node answers for the whole cluster."""
        return [node.url for node in self.nodes]

    def start(self, timeout_s: float = 120.0) -> list[str]:
        """Start every node, join them and create the system databases; returns :attr:`urls`."""
        try:
            for node in self.nodes:
                node.start(timeout_s)
            self._join(timeout_s)
        except BaseException:
            self.stop()
            raise
        return self.urls

    def _join(self, timeout_s: float) -> None:
        first = self.nodes[0]
        auth = (first.ADMIN, first.password)
        base = f"http://{first.host}:{first.port}"
        with httpx.Client(base_url=base, auth=auth, timeout=30.0) as http:
            for node in self.nodes[1:]:
                http.put(f"/_node/_local/_nodes/{node.node_name}", json={}).raise_for_status()
            wanted = {node.node_name for node in self.nodes}
            deadline = time.monotonic() + timeout_s
            while set(http.get("/_membership").json().get("cluster_nodes", [])) != wanted:
                if time.monotonic() > deadline:
                    raise CouchServerError(f"the nodes did not join within {timeout_s} s")
                time.sleep(0.2)
            for database in SYSTEM_DATABASES:
                answer = http.put(f"/{database}")
                if answer.status_code not in (201, 202, 412):
                    answer.raise_for_status()

    def kill(self, index: int) -> None:
        """SIGKILL node ``index`` (its data stays; :meth:`restart` brings it back)."""
        self.nodes[index].kill()

    def restart(self, index: int, timeout_s: float = 120.0) -> None:
        """Start node ``index`` again on its port and data; it catches up by internal replication."""
        self.nodes[index].start(timeout_s)

    def stop(self) -> None:
        """Stop every node, then drop a temporary data folder."""
        for node in reversed(self.nodes):
            with contextlib.suppress(Exception):
                node.stop()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> LocalCouchDB3Cluster:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
