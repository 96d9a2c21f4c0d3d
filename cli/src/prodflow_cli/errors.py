"""Errors a command reports as one line on stderr, each with its exit code."""

from __future__ import annotations

from typing import Any

from prodflow_cli.exits import ExitCode, exit_code_for_status


class CliError(Exception):
    """A failure the user should read as one clear line; ends the command with :attr:`exit_code`."""

    exit_code: ExitCode = ExitCode.FAILURE

    def __init__(self, message: str, exit_code: ExitCode | None = None) -> None:
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code

    def line(self) -> str:
        """The message shown to the user."""
        return str(self)

    def document(self) -> dict[str, Any]:
        """The error as JSON, for ``--json``."""
        return {"error": self.line(), "exit_code": int(self.exit_code)}


class Unreachable(CliError):
    """The gateway did not answer."""

    exit_code = ExitCode.UNREACHABLE


class NotLoggedIn(CliError):
    """No token is configured."""

    exit_code = ExitCode.UNAUTHENTICATED


class ApiError(CliError):
    """The gateway or a service answered with an error status (RFC 9457 problem+json when it can)."""

    def __init__(self, status: int, problem: dict[str, Any]) -> None:
        self.status = status
        self.problem = problem
        super().__init__(problem_line(status, problem), exit_code_for_status(status))

    def document(self) -> dict[str, Any]:
        return {**self.problem, "exit_code": int(self.exit_code)}


def problem_line(status: int, problem: dict[str, Any]) -> str:
    """``422 Validation failed: label: must match ...; contacts.0: not an e-mail`` — one line, every bad field."""
    title = str(problem.get("title") or "Error")
    detail = str(problem.get("detail") or "")
    fields = [
        f"{e.get('field', '?')}: {e.get('message', '')}"
        for e in problem.get("errors") or []
        if isinstance(e, dict) and f"{e.get('field', '?')}: {e.get('message', '')}" not in detail
    ]
    text = "; ".join(part for part in (detail, *fields) if part)
    line = f"{status} {title}" + (f": {text}" if text else "")
    if request_id := problem.get("request_id"):
        line += f" (request id {request_id})"
    return " ".join(line.split())
