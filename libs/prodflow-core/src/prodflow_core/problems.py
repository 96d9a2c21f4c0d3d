"""RFC 9457 problem details: one exception type and the handlers every service installs."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import httpx
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict
from sqlalchemy.exc import DataError
from starlette.exceptions import HTTPException as StarletteHTTPException

from prodflow_core.http_edges import allowed_methods

PROBLEM_MEDIA_TYPE = "application/problem+json"
PROBLEM_BASE = "https://prodflow.dev/problems/"

_log = logging.getLogger("prodflow.problems")


class FieldError(BaseModel):
    """One offending field of a request body, query or path."""

    field: str
    message: str
    type: str = "invalid"


class ProblemDetail(BaseModel):
    """The JSON body of every error response (RFC 9457)."""

    model_config = ConfigDict(extra="allow")

    type: str
    title: str
    status: int
    detail: str = ""
    instance: str | None = None
    errors: list[FieldError] | None = None


class Problem(Exception):
    """Raise to answer with ``application/problem+json``.

    ``kind`` becomes the problem ``type`` URI; ``extra`` members are added to the body.
    """

    def __init__(
        self,
        status: int,
        title: str,
        detail: str = "",
        *,
        kind: str | None = None,
        errors: Sequence[FieldError] | None = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail or title)
        self.status = status
        self.title = title
        self.detail = detail
        self.kind = kind or _slug(title)
        self.errors = list(errors) if errors is not None else None
        self.headers = headers
        self.extra = extra

    def body(self, instance: str | None = None) -> dict[str, Any]:
        """The problem document."""
        doc: dict[str, Any] = {
            "type": PROBLEM_BASE + self.kind,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        }
        if instance:
            doc["instance"] = instance
        if self.errors is not None:
            doc["errors"] = [e.model_dump() for e in self.errors]
        doc.update(self.extra)
        return doc


def not_found(what: str, key: str) -> Problem:
    """A 404 problem for a missing resource."""
    return Problem(404, f"{what} not found", f"no {what.lower()} {key!r}", kind="not-found")


def conflict(detail: str, **extra: Any) -> Problem:
    """A 409 problem."""
    return Problem(409, "Conflict", detail, kind="conflict", **extra)


def problem_response(problem: Problem, instance: str | None = None) -> JSONResponse:
    """Render a :class:`Problem` as a response."""
    return JSONResponse(
        problem.body(instance),
        status_code=problem.status,
        media_type=PROBLEM_MEDIA_TYPE,
        headers=problem.headers,
    )


def _slug(title: str) -> str:
    return "-".join(title.lower().split()) or "about:blank"


def _loc_to_field(loc: Sequence[Any]) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] in {"body", "query", "path", "header", "cookie"}:
        prefix, rest = parts[0], parts[1:]
        return ".".join(rest) if prefix == "body" and rest else ".".join([prefix, *rest])
    return ".".join(parts)


def validation_problem(errors: Sequence[dict[str, Any]]) -> Problem:
    """A 422 problem listing each field pydantic refused."""
    fields = [
        FieldError(field=_loc_to_field(e.get("loc", ())), message=str(e.get("msg", "")), type=str(e.get("type", "")))
        for e in errors
    ]
    return Problem(
        422,
        "Validation failed",
        "; ".join(f"{f.field}: {f.message}" for f in fields),
        kind="validation",
        errors=fields,
    )


async def _on_problem(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, Problem)
    return problem_response(exc, request.url.path)


async def _on_validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return problem_response(validation_problem(list(exc.errors())), request.url.path)


async def _on_http(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    title = {404: "Not found", 405: "Method not allowed", 413: "Request entity too large"}.get(
        exc.status_code, "HTTP error"
    )
    detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
    headers = dict(exc.headers or {})
    if exc.status_code == 405 and (allow := _allow(request, headers.get("Allow", ""))):
        headers["Allow"] = allow
    problem = Problem(exc.status_code, title, detail, headers=headers)
    return problem_response(problem, request.url.path)


def _allow(request: Request, raised: str) -> str:
    """Every method of the path (starlette names the first route's); static files' own where no route has it."""
    return ", ".join(allowed_methods(request.app.router.routes, request.scope)) or raised


async def _on_unexpected(request: Request, exc: Exception) -> JSONResponse:
    rid = getattr(request.state, "request_id", None)
    _log.error("unhandled error on %s %s (request %s)", request.method, request.url.path, rid, exc_info=exc)
    problem = Problem(
        500,
        "Internal server error",
        "the service failed; see its log",
        kind="internal",
        headers={"X-Request-ID": rid} if rid else None,
        request_id=rid,
    )
    return problem_response(problem, request.url.path)


async def _on_out_of_range(request: Request, exc: Exception) -> JSONResponse:
    """A value the database cannot store (a run number past 2**63 for SQLite): the client's input, not a crash."""
    _log.warning("value out of range on %s %s: %s", request.method, request.url.path, exc)
    problem = Problem(
        422, "Value out of range", "a value of the request is beyond what the service can store", kind="out-of-range"
    )
    return problem_response(problem, request.url.path)


async def _on_dependency_down(request: Request, exc: Exception) -> JSONResponse:
    """A server this one depends on (CouchDB, another service) refused, broke off or did not answer in time."""
    _log.warning("dependency unavailable on %s %s: %r", request.method, request.url.path, exc)
    problem = Problem(
        503,
        "Dependency unavailable",
        "a server this service depends on did not answer; try again shortly",
        kind="unavailable",
        headers={"Retry-After": "5"},
    )
    return problem_response(problem, request.url.path)


def install_problem_handlers(app: FastAPI) -> None:
    """Make every error of ``app`` an RFC 9457 problem document."""
    app.add_exception_handler(Problem, _on_problem)
    app.add_exception_handler(RequestValidationError, _on_validation)
    app.add_exception_handler(StarletteHTTPException, _on_http)
    # SQLite's driver raises OverflowError for an integer past 64 bits, PostgreSQL's a DataError (also past int32)
    app.add_exception_handler(OverflowError, _on_out_of_range)
    app.add_exception_handler(DataError, _on_out_of_range)
    app.add_exception_handler(httpx.TransportError, _on_dependency_down)
    app.add_exception_handler(Exception, _on_unexpected)


PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"model": ProblemDetail, "content": {PROBLEM_MEDIA_TYPE: {}}, "description": desc}
    for code, desc in {
        400: "Bad request",
        401: "Unauthenticated",
        403: "Forbidden",
        404: "Not found",
        409: "Conflict",
        422: "Validation failed",
        429: "Too many failed authentications from this address (the gateway; see Retry-After)",
    }.items()
}
