"""The gateway's HTTP edge: 405 + Allow (its own routes and the services'), security headers, CORS on and off."""

from __future__ import annotations

import httpx
import pytest
from gateway_stack import ADMIN_TOKEN, CORS_ORIGIN, Stack
from prodflow_gateway.settings import GatewaySettings
from pydantic import ValidationError

pytestmark = pytest.mark.integration
PROBLEM = "application/problem+json"


def _client(stack: Stack) -> httpx.Client:
    return httpx.Client(base_url=stack.url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=10)


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        # the echo service's paths: its own 405 reaches the client unchanged, whatever the method
        ("PUT", "/api/requests/echo", "GET, POST"),
        ("DELETE", "/api/requests/echo/x", "GET"),
        ("OPTIONS", "/api/requests/echo", "GET, POST"),
        ("TRACE", "/api/requests/echo", "GET, POST"),
        # the gateway's own routes: no longer a 404 from the proxy
        ("PUT", "/api/auth/whoami", "GET"),
        ("OPTIONS", "/api/auth/tokens", "GET, POST"),
        ("PATCH", "/api/auth/tokens/tok-1", "GET, DELETE"),
        ("POST", "/api/events", "GET"),
        ("DELETE", "/api/health/monitor", "GET"),
        ("POST", "/healthz", "GET"),
        ("POST", "/openapi.json", "GET"),
        ("DELETE", "/", "GET, HEAD"),  # the dashboard's static files,
    ],
)
def test_a_method_the_path_lacks_is_405_with_allow(stack: Stack, method: str, path: str, allow: str) -> None:
    with _client(stack) as client:
        answer = client.request(method, path)
    assert answer.status_code == 405, answer.text
    assert answer.headers["content-type"] == PROBLEM and answer.json()["status"] == 405
    assert answer.headers["allow"] == allow


def test_a_path_nobody_has_stays_404_for_any_method(stack: Stack) -> None:
    with _client(stack) as client:
        for method in ("GET", "PUT", "OPTIONS"):
            assert client.request(method, "/api/nothing-here").status_code == 404


def test_dashboard_forbids_framing_referrers_and_sniffing(stack: Stack) -> None:
    with httpx.Client(base_url=stack.url, timeout=10) as browser:
        for path in ("/", "/style.css"):
            answer = browser.get(path)
            assert answer.status_code == 200
            assert "frame-ancestors 'none'" in answer.headers["content-security-policy"]
            assert "script-src 'self'" in answer.headers["content-security-policy"]
            assert answer.headers["referrer-policy"] == "no-referrer"
            assert answer.headers["x-content-type-options"] == "nosniff"


def test_api_answers_say_nosniff_once(stack: Stack) -> None:
    with _client(stack) as client:
        answers = [client.get("/api/auth/whoami"), client.get("/api/requests/echo"), client.get("/api/nothing")]
    for answer in answers:
        assert answer.headers.get_list("x-content-type-options") == ["nosniff"]


def test_cors_is_off_by_default(stack: Stack) -> None:
    preflight = {"Origin": CORS_ORIGIN, "Access-Control-Request-Method": "POST"}
    with _client(stack) as client:
        simple = client.get("/api/auth/whoami", headers={"Origin": CORS_ORIGIN})
        options = client.options("/api/requests/echo", headers=preflight)
    assert simple.status_code == 200 and "access-control-allow-origin" not in simple.headers
    assert options.status_code == 405 and "access-control-allow-origin" not in options.headers


def test_cors_answers_only_the_configured_origin(cors_stack: Stack) -> None:
    preflight = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization"}
    with _client(cors_stack) as client:
        allowed = client.options("/api/requests/echo", headers={"Origin": CORS_ORIGIN, **preflight})
        other = client.options("/api/requests/echo", headers={"Origin": "https://evil.example", **preflight})
        simple = client.get("/api/auth/whoami", headers={"Origin": CORS_ORIGIN})
        stranger = client.get("/api/auth/whoami", headers={"Origin": "https://evil.example"})
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == CORS_ORIGIN
    assert "authorization" in allowed.headers["access-control-allow-headers"].lower()
    assert "access-control-allow-credentials" not in allowed.headers
    assert other.status_code == 400 and "access-control-allow-origin" not in other.headers
    assert simple.headers["access-control-allow-origin"] == CORS_ORIGIN
    assert "access-control-allow-origin" not in stranger.headers


def test_cors_origins_are_a_comma_separated_list_of_explicit_origins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_CORS_ORIGINS", "https://a.example.org, http://127.0.0.1:8080/")
    assert GatewaySettings().cors_origins == ["https://a.example.org", "http://127.0.0.1:8080"]
    assert GatewaySettings(cors_origins=[]).cors_origins == []
    for bad in ("*", "https://*.example.org", "a.example.org", "https://a.example.org/path"):
        monkeypatch.setenv("GATEWAY_CORS_ORIGINS", bad)
        with pytest.raises(ValidationError):
            GatewaySettings()
