"""Gateway: tokens, roles, routing, errors, merged OpenAPI, health."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from gateway_stack import ADMIN_TOKEN, Stack
from prodflow_gateway.proxy import BUFFERED_MAX

pytestmark = pytest.mark.integration
PROBLEM = "application/problem+json"


def _client(stack: Stack, token: str | None = ADMIN_TOKEN) -> httpx.Client:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(base_url=stack.url, headers=headers, timeout=10)


def _token(stack: Stack, roles: list[str], experiments: list[str], user: str = "alice") -> str:
    with _client(stack) as admin:
        answer = admin.post("/api/auth/tokens", json={"user": user, "roles": roles, "experiments": experiments})
        assert answer.status_code == 201, answer.text
        return str(answer.json()["token"])


def test_first_admin_token_was_written_once(stack: Stack) -> None:
    path = stack.settings.admin_token_path()
    assert path.read_text().strip() == ADMIN_TOKEN
    assert oct(path.stat().st_mode & 0o777) == "0o600"


def test_missing_or_unknown_token_is_401_problem(stack: Stack) -> None:
    with _client(stack, token=None) as anonymous:
        answer = anonymous.get("/api/requests/echo")
    assert answer.status_code == 401
    assert answer.headers["content-type"] == PROBLEM
    assert answer.json()["type"].endswith("/unauthenticated")
    with _client(stack, token="pf_nope") as stranger:
        assert stranger.get("/api/auth/whoami").status_code == 401


def test_proxy_forwards_signed_identity_and_request_id_but_not_the_token(stack: Stack) -> None:
    token = _token(stack, ["requester"], ["snoplus"], user="bob")
    with _client(stack, token) as client:
        answer = client.post("/api/requests/echo?x=1", content=b"{}", headers={"X-Request-ID": "rid-123"})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["user"] == "bob" and body["roles"] == ["requester"] and body["experiments"] == ["snoplus"]
    assert body["request_id"] == "rid-123" and answer.headers["x-request-id"] == "rid-123"
    assert body["authorization"] is None
    assert body["query"] == "x=1" and body["body_bytes"] == 2


def test_path_is_forwarded_as_sent_percent_encoded(stack: Stack) -> None:
    with _client(stack) as client:
        marks = client.get("/api/requests/echo/a%3Fb%23c?x=1")
        control = client.get("/api/requests/echo/a%15b")  # was a 500: httpx refuses a decoded control character
    assert marks.status_code == 200, marks.text
    assert marks.json() == {"name": "a?b#c", "raw_path": "/api/requests/echo/a%3Fb%23c", "query": "x=1"}
    assert control.status_code == 200, control.text
    assert control.json()["name"] == "a\x15b"


def test_reader_cannot_write_and_other_experiment_is_forbidden(stack: Stack) -> None:
    reader = _token(stack, ["reader"], ["legend"])
    with _client(stack, reader) as client:
        assert client.get("/api/requests/echo").status_code == 200
        write = client.post("/api/requests/echo", json={})
        assert write.status_code == 403 and write.json()["required_role"] == "requester"
        # which mails reach them is the one thing a reader may write (the echo service has no such route: 404)
        assert client.put("/api/notifications/me", json={}).status_code == 404
        lists = client.put("/api/notifications/experiments/legend", json={})
        assert lists.status_code == 403 and lists.json()["required_role"] == "requester"
        other = client.get("/api/requests/echo", params={"experiment": "snoplus"})
        assert other.status_code == 403 and "snoplus" in other.json()["detail"]
        escaped = client.get("/api/requests/echo?label=x&%65xperiment=snoplus")  # the name spelt with an escape
        assert escaped.status_code == 403 and "snoplus" in escaped.json()["detail"]
        assert client.get("/api/auth/tokens").status_code == 403


def test_service_down_is_502_problem(stack: Stack) -> None:
    with _client(stack) as client:
        answer = client.get("/api/campaigns")
    assert answer.status_code == 502
    assert answer.headers["content-type"] == PROBLEM
    assert answer.json()["service"] == "submitter"


def test_unknown_api_path_is_404_problem(stack: Stack) -> None:
    with _client(stack) as client:
        answer = client.get("/api/nothing-here")
    assert answer.status_code == 404 and answer.headers["content-type"] == PROBLEM


def test_body_over_the_limit_is_413(stack: Stack) -> None:
    with _client(stack) as client:
        answer = client.post("/api/requests/echo", content=b"x" * (2 * 1024 * 1024))
    assert answer.status_code == 413 and answer.headers["content-type"] == PROBLEM


def test_a_chunked_body_going_past_the_limit_while_sent_is_413(stack: Stack) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(40):
            yield b"x" * 65536  # 2.5 MiB in all, no Content-Length: the limit is found while forwarding

    with _client(stack) as client:
        answer = client.post("/api/requests/echo", content=chunks())
    assert answer.status_code == 413 and answer.headers["content-type"] == PROBLEM


@pytest.mark.parametrize("size", [0, 1000, BUFFERED_MAX + 1])
@pytest.mark.parametrize("chunked", [False, True])
def test_answers_of_any_length_arrive_whole_read_at_once_or_streamed(stack: Stack, size: int, chunked: bool) -> None:
    with _client(stack) as client:
        answer = client.get(f"/api/requests/bytes/{size}", params={"chunked": chunked})
        head = client.head(f"/api/requests/bytes/{size}")
    assert answer.status_code == 200 and answer.content == bytes(i % 251 for i in range(size))
    if chunked:
        assert answer.headers.get("transfer-encoding") == "chunked"
    else:
        assert answer.headers["content-length"] == str(size)  # streamed or not, as the service declared it
    assert head.status_code == 200 and head.headers["content-length"] == str(size) and head.content == b""


def test_token_creation_refuses_unknown_fields_and_roles(stack: Stack) -> None:
    with _client(stack) as client:
        answer = client.post(
            "/api/auth/tokens", json={"user": "x", "roles": ["wizard"], "experiments": ["*"], "colour": "blue"}
        )
    assert answer.status_code == 422
    fields = {e["field"] for e in answer.json()["errors"]}
    assert {"roles.0", "colour"} <= fields


def test_revoked_token_stops_working(stack: Stack) -> None:
    token = _token(stack, ["reader"], ["*"], user="carol")
    with _client(stack, token) as client:
        me = client.get("/api/auth/whoami").json()
    assert me["user"] == "carol"
    with _client(stack) as admin:
        listed = admin.get("/api/auth/tokens", params={"user": "carol"}).json()
        assert [t["id"] for t in listed] == [me["token_id"]] and "token" not in listed[0]
        assert admin.delete(f"/api/auth/tokens/{me['token_id']}").json()["revoked_at"]
    with _client(stack, token) as client:
        assert client.get("/api/auth/whoami").status_code == 401


def test_merged_openapi_has_gateway_and_service_paths(stack: Stack) -> None:
    with _client(stack, token=None) as client:
        spec = client.get("/openapi.json").json()
        assert client.get("/docs").status_code == 200
    assert "/api/auth/tokens" in spec["paths"] and "/api/events" in spec["paths"]
    assert "/api/requests/echo" in spec["paths"]
    assert spec["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"


def test_health_reports_every_service(stack: Stack) -> None:
    with _client(stack, token=None) as client:
        answer = client.get("/healthz")
    assert answer.status_code == 503  # three services are down in this stack
    services = answer.json()["services"]
    assert services["request-api"]["status"] == "ok"
    assert services["submitter"]["status"] == "down"
    with _client(stack) as client:
        assert client.get("/api/health/request-api").json()["service"] == "echo"
        assert client.get("/api/health/monitor").status_code == 502
