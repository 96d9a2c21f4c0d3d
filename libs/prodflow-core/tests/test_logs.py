"""No password of a CouchDB URL in the logs: the helper, the filter, and the request log of a real request."""

from __future__ import annotations

import logging
from urllib.parse import urlsplit, urlunsplit

import pytest
from prodflow_core.couch import CouchClient
from prodflow_core.couch.server import CouchServerError, free_port, wait_until_up
from prodflow_core.credentials import redact_url, split_userinfo
from prodflow_core.logs import configure_logging


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("http://admin:secret@127.0.0.1:5984", "http://admin:***@127.0.0.1:5984"),
        ("https://u:p%40ss@couch.example/db?x=1", "https://u:***@couch.example/db?x=1"),
        (
            'GET http://admin:p@ss@h:1/db/_changes "HTTP/1.1 200 OK"',
            'GET http://admin:***@h:1/db/_changes "HTTP/1.1 200 OK"',
        ),
        ("http://:tok@h/", "http://:***@h/"),
        ("http://127.0.0.1:5984/db", "http://127.0.0.1:5984/db"),
        ("http://admin@h:1 mail me@example.org", "http://***@h:1 mail me@example.org"),
        ("git clone https://ghp_tok3n@github.com/x/y.git", "git clone https://***@github.com/x/y.git"),
        ("no url here: a@b", "no url here: a@b"),
    ],
)
def test_redact_url(text: str, expected: str) -> None:
    assert redact_url(text) == expected


def test_server_errors_do_not_show_the_password() -> None:
    with pytest.raises(CouchServerError) as failed:
        wait_until_up(f"http://admin:hunter2-secret@127.0.0.1:{free_port()}", timeout_s=0.3)
    assert "hunter2-secret" not in str(failed.value) and "admin:***@" in str(failed.value)


def _with_password(url: str) -> tuple[str, str]:
    """``url`` with a password in its userinfo (its own, or a made-up one for PouchDB Server), and the password."""
    parts = urlsplit(url)
    if parts.password:
        return url, parts.password
    made_up = "made-up-password-4711"
    return urlunsplit(parts._replace(netloc=f"admin:{made_up}@{parts.hostname}:{parts.port}")), made_up


@pytest.mark.integration
@pytest.mark.both_couch
async def test_request_logs_of_a_password_url_never_show_the_password(
    couch_target: str, capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    url, password = _with_password(couch_target)
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    configure_logging("test", "DEBUG", as_json=True)  # what every service does; at DEBUG each request is logged
    root.handlers.insert(0, caplog.handler)  # a handler without the filter, first: the client's own line protects it
    try:
        with caplog.at_level(logging.DEBUG):
            async with CouchClient(url) as client:
                await client.request("GET", "_all_dbs", ok_statuses=(401,))  # PouchDB: made-up password
                logging.getLogger("prodflow.test").warning("could not reach %s", url)
    finally:
        root.handlers[:], _ = saved
        root.setLevel(saved[1])
    stderr = capfd.readouterr().err
    # The request was logged with the bare URL: the credentials travel in the Authorization header.
    assert f"CouchDB GET {split_userinfo(url)[0]}/_all_dbs" in stderr
    assert "could not reach http://admin:***@" in stderr
    assert password not in stderr
    requests = [record.getMessage() for record in caplog.records if record.name == "prodflow.couch.client"]
    assert requests and not [message for message in requests if password in message]
