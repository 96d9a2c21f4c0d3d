"""Property-based requests (schemathesis 4) from the gateway's merged OpenAPI, against the whole embedded system.

Every operation of ``GET {gateway}/openapi.json`` gets schemathesis's examples, coverage and fuzzing phases (valid
and invalid data, derandomized), sent through the gateway with the admin token. Every response passes every check
schemathesis 4 has for a stateless run:

- no 5xx (``not_a_server_error``), every 4xx is RFC 9457 problem+json (``problem_json``, ours);
- the documented status, content type, headers and body (``status_code_conformance``,
  ``content_type_conformance``, ``response_headers_conformance``, ``response_schema_conformance``);
- a schema-violating request is refused (``negative_data_rejection``: ``"replace": 0`` is not a boolean), a
  schema-valid one accepted (``positive_data_acceptance``, except where a 422 names only rules that no JSON Schema
  can state: :data:`BEYOND_THE_SCHEMA`, :data:`ISSUED_VALUES`, :data:`STATE_PROBLEMS`);
- a method the path lacks is a 405 with ``Allow`` (``unsupported_method``), and the ``Allow`` of ``OPTIONS``
  lists exactly the documented methods (``allow_header_conformance``);
- a missing required header is refused (``missing_required_header``), and no operation answers 2xx without the
  token (``ignored_auth``);
- ``use_after_free`` and ``ensure_resource_availability`` are listed but judge only requests that the stateful
  phase chains (a DELETE then a GET of what it deleted; a POST then a GET of what it made): they pass vacuously
  here, because the stateful phase is off: its chains would approve requests into campaigns and grow the run far
  past its few minutes. ``object_level_authorization`` is left out for the same reason (it compares what a second
  identity reads of objects the first created in such chains).

No operation is left out; the ones that could start expensive or unsafe work are kept harmless instead:

- ``POST /api/campaigns`` always goes with ``dry_run=true``: a random valid jobs.json may ask for up to 1,000,000
  jobs, which would be written to CouchDB one by one;
- the submitter's submission loop is off, so jobs of a campaign an approved request makes never run a command;
- cycle-runner may only clone ``file://`` URLs, and no generated URL names a repository, so no cycle is ever
  created and ``POST .../software`` (installs) and ``POST .../runs`` (Snakemake) can only answer 404/422; the last
  test checks that no cycle exists;
- ``DELETE /api/auth/tokens/{token_id}`` and ``POST /api/auth/tokens/{token_id}/rotate`` never revoke or rotate
  the admin token the run uses (its id shows up in ``GET /api/auth/tokens``, and schemathesis reuses values from
  earlier responses).

Run: ``uv run pytest -q tests/test_schemathesis.py -p no:cacheprovider`` (``-s`` prints requests per operation).
"""

from __future__ import annotations

import contextlib
import re
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from typing import Any

import httpx
import hypothesis
import pytest
import schemathesis
from schemathesis import BaseSchema, Case, CheckContext, Response
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi import checks as openapi_checks
from system_support import System, embedded_system

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

SEED = 20261125
MAX_EXAMPLES = 30
"""Fuzzed requests per operation; the examples and coverage phases add their own (bounded by the schema)."""
EVENTS_TIMEOUT_S = 0.5
"""``GET /api/events`` is an endless SSE stream: schemathesis reads it this long, then checks what came."""
OWN_TOKEN_ENDERS = frozenset({"DELETE /api/auth/tokens/{token_id}", "POST /api/auth/tokens/{token_id}/rotate"})
sent: Counter[str] = Counter()
statuses: Counter[int] = Counter()
spent: defaultdict[str, float] = defaultdict(float)


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    extra_env = {
        # Campaigns made by approved requests stay documents: no generated command ever runs on this machine.
        "SUBMITTER_RUN_SUBMISSION_LOOP": "false",
        # Generated repository URLs may only name local paths: cycle creation never reaches the network.
        "CYCLE_RUNNER_GIT_PROTOCOLS": "file",
        # ignored_auth sends calls without or with a wrong token on purpose: with the default limit (20 a minute)
        # the gateway would answer every later call 429 (services/gateway/tests/test_token_lifecycle.py tests it).
        "GATEWAY_AUTH_FAILURE_LIMIT": "1000000",
    }
    with contextlib.ExitStack() as stack:
        for attempt in range(3):  # a port picked free can be taken by someone else before a service binds it
            try:
                running = stack.enter_context(embedded_system(tmp_path_factory.mktemp("schemathesis"), extra_env))
                break
            except RuntimeError:
                if attempt == 2:
                    raise
        yield running


@pytest.fixture(scope="module")
def admin_token_id(system: System) -> str:
    answer = httpx.get(f"{system.gateway}/api/auth/whoami", headers={"Authorization": f"Bearer {system.token}"})
    answer.raise_for_status()
    return str(answer.json()["token_id"])


@pytest.fixture(scope="module")
def api_schema(system: System) -> BaseSchema:
    config = schemathesis.Config.from_dict(
        {
            "seed": SEED,
            "cache": {"enabled": False},
            "suppress-health-check": ["too_slow", "filter_too_much"],
            "request-timeout": 30,
            "auth": {"openapi": {"bearer": {"bearer": system.token}}},
            "generation": {
                "max-examples": MAX_EXAMPLES,
                "deterministic": True,
                "database": "none",
                # Only the admin token: generated Authorization headers would spend much of the fuzzing on 401s
                # the gateway answers before any service sees the request.
                "with-security-parameters": False,
            },
            "phases": {"stateful": {"enabled": False}},
        }
    )
    return schemathesis.openapi.from_url(f"{system.gateway}/openapi.json", config=config, timeout=30)


schema = schemathesis.pytest.from_fixture("api_schema")


@pytest.fixture(autouse=True)
def _item_node_id(request: pytest.FixtureRequest) -> None:
    """schemathesis 4.32 renames the running item through ``item._nodeid``, an attribute pytest 9.2 dropped."""
    if not hasattr(request.node, "_nodeid"):
        request.node._nodeid = request.node.nodeid


def problem_json(ctx: CheckContext, response: Response, case: Case[Any]) -> bool | None:
    """Every 4xx is RFC 9457 problem+json: a JSON object with ``type``, ``title`` and ``status`` = the HTTP status."""
    if not 400 <= response.status_code < 500:
        return None
    content_type = response.headers.get("content-type", [""])[0]
    assert content_type.split(";")[0].strip() == "application/problem+json", f"{response.status_code}: {content_type}"
    body = response.json()
    assert isinstance(body, dict), body
    assert isinstance(body.get("type"), str) and isinstance(body.get("title"), str), body
    assert body.get("status") == response.status_code, body
    return None


BEYOND_THE_SCHEMA: dict[str, str] = {
    # field error type of a 422 → the rule it reports, which no JSON Schema of the request can state
    "value_error": "a rule across fields (a range's first <= last) or email-validator's reserved domains (.test)",
    "unsafe": "repository URL schemes allowed here (CYCLE_RUNNER_GIT_PROTOCOLS), or a path leaving its cycle",
    "runs_required": "a run-by-run entry needs run_numbers, or a run_list beside the jobs.json (across objects)",
    "label_required": "a module's label: its own, the jobs.json's or the submission's (across objects)",
    "duplicate_module": "one (label, module) pair per jobs.json: uniqueness of a pair across array items",
    "too_many_jobs": "the jobs a campaign makes: runs x chunks summed over modules, at most 1,000,000",
    "unknown_experiment": "which experiments the catalog holds: data, not schema",
    "missing": "one of two fields (experiment here or in jobs.experiment)",
    "one_of": "exactly one of several optional query parameters (provenance: url, job, path or name + adler32)",
    "conflict": "query parameters that exclude each other (a cycle file's path, or its name and adler32)",
    "unexpected": "a query parameter that only goes with another (cycle with a relative path)",
    "refused_destination": "where a webhook URL's host resolves to (DNS) and the admin's allow-list: data, not schema",
}
"""Why some schema-valid requests are refused: ``positive_data_acceptance`` lets these 422s pass, and only these."""
ISSUED_VALUES: dict[str, str] = {"query.cursor": "a page cursor: only the server issues valid ones"}
"""Fields whose valid values the server hands out (a 422 naming only these is about state, not shape)."""
STATE_PROBLEMS = {"bad-resume-point", "bad-cursor"}
"""Problem kinds about state, not shape: whether a well-formed sequence belongs to the event stream, whether a
well-formed cursor is one the server issued for this query and caller."""


def _beyond_the_schema(error: dict[str, Any]) -> bool:
    return error.get("type") in BEYOND_THE_SCHEMA or error.get("field") in ISSUED_VALUES


def positive_data_acceptance(ctx: CheckContext, response: Response, case: Case[Any]) -> bool | None:
    """schemathesis's check, except for refusals whose every reason the schema cannot state (see above)."""
    if 400 <= response.status_code < 500:
        body = response.json()
        kind = str(body.get("type", "")).rsplit("/", 1)[-1]
        errors = body.get("errors") or []
        if kind in STATE_PROBLEMS:
            return None
        if response.status_code == 422 and errors and all(_beyond_the_schema(error) for error in errors):
            return None
    return openapi_checks.positive_data_acceptance(ctx, response, case)


CHECKS = [
    not_a_server_error,
    problem_json,
    openapi_checks.response_schema_conformance,
    openapi_checks.status_code_conformance,
    openapi_checks.content_type_conformance,
    openapi_checks.response_headers_conformance,
    openapi_checks.negative_data_rejection,
    positive_data_acceptance,
    openapi_checks.missing_required_header,
    openapi_checks.unsupported_method,
    openapi_checks.allow_header_conformance,
    openapi_checks.use_after_free,
    openapi_checks.ensure_resource_availability,
    openapi_checks.ignored_auth,
]


@schema.parametrize()
@hypothesis.settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[hypothesis.HealthCheck.too_slow, hypothesis.HealthCheck.filter_too_much],
)
def test_api(case: Case[Any], admin_token_id: str) -> None:
    label = case.operation.label
    kwargs: dict[str, Any] = {}
    if label in OWN_TOKEN_ENDERS and case.path_parameters == {"token_id": admin_token_id}:
        case.path_parameters = {"token_id": "tok-000000000000"}  # revoking or rotating our token ends the coverage
    if label == "POST /api/campaigns":
        case.query = {**(case.query or {}), "dry_run": "true"}
    if label == "GET /api/events":
        kwargs["timeout"] = EVENTS_TIMEOUT_S
    started = time.monotonic()
    try:
        response = case.call_and_validate(checks=CHECKS, **kwargs)
    finally:
        sent[label] += 1
        spent[label] += time.monotonic() - started
    statuses[response.status_code] += 1


def test_every_operation_was_exercised(system: System) -> None:
    """Every operation got requests, the admin token lived to the end, and no cycle (so no install or run) exists."""
    if not sent:
        pytest.skip("test_api did not run")
    print(f"\nrequests: {sum(sent.values())} over {len(sent)} operations; statuses {sorted(statuses.items())}")
    for label, n in sorted(sent.items(), key=lambda item: re.sub(r"^\w+ ", "", item[0])):
        print(f"  {n:5d} requests {spent[label]:6.2f} s  {label}")
    headers = {"Authorization": f"Bearer {system.token}"}
    with httpx.Client(base_url=system.gateway, headers=headers, timeout=30) as client:
        spec = client.get("/openapi.json").json()
        assert client.get("/api/auth/whoami").status_code == 200
        assert client.get("/api/cycles").json() == []
    operations = {f"{method.upper()} {path}" for path, item in spec["paths"].items() for method in item}
    assert set(sent) == operations
