"""Problem documents shown as one line, and the exit code of each HTTP status."""

from __future__ import annotations

from prodflow_cli.errors import ApiError, problem_line
from prodflow_cli.exits import ExitCode, exit_code_for_status


def test_validation_problem_names_every_field_once() -> None:
    problem = {
        "title": "Validation failed",
        "status": 422,
        "detail": "label: does not match",
        "errors": [
            {"field": "label", "message": "does not match", "type": "pattern"},
            {"field": "contacts.0", "message": "not an e-mail address", "type": "email"},
        ],
    }
    assert problem_line(422, problem) == (
        "422 Validation failed: label: does not match; contacts.0: not an e-mail address"
    )


def test_problem_line_is_one_line_and_carries_the_request_id() -> None:
    problem = {"title": "Internal error", "detail": "boom\n  at line 3", "request_id": "r-1"}
    line = problem_line(500, problem)
    assert "\n" not in line
    assert line == "500 Internal error: boom at line 3 (request id r-1)"


def test_exit_codes_are_stable() -> None:
    assert [exit_code_for_status(s) for s in (401, 403, 404, 409, 422, 400, 502, 503, 418)] == [
        ExitCode.UNAUTHENTICATED,
        ExitCode.FORBIDDEN,
        ExitCode.NOT_FOUND,
        ExitCode.CONFLICT,
        ExitCode.INVALID,
        ExitCode.INVALID,
        ExitCode.SERVER_ERROR,
        ExitCode.SERVER_ERROR,
        ExitCode.FAILURE,
    ]
    # Scripts depend on these numbers: changing one is a breaking change.
    assert {c.name: c.value for c in ExitCode} == {
        "OK": 0,
        "FAILURE": 1,
        "USAGE": 2,
        "UNREACHABLE": 3,
        "UNAUTHENTICATED": 4,
        "FORBIDDEN": 5,
        "NOT_FOUND": 6,
        "CONFLICT": 7,
        "INVALID": 8,
        "SERVER_ERROR": 9,
        "UNHEALTHY": 10,
        "CHECKSUM": 11,
        "WORK_FAILED": 12,
        "TIMEOUT": 13,
    }


def test_api_error_document_keeps_the_problem() -> None:
    error = ApiError(409, {"title": "Conflict", "detail": "approved → draft is not allowed", "allowed": ["cancelled"]})
    assert error.exit_code == ExitCode.CONFLICT
    assert error.document()["allowed"] == ["cancelled"]
    assert error.document()["exit_code"] == 7
