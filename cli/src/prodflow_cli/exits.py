"""Exit codes of ``prodflow``: stable, so scripts can branch on them (documented in ``prodflow --help``)."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """What a ``prodflow`` command's exit status means."""

    OK = 0
    FAILURE = 1
    """Anything not listed below (including an HTTP error status without a code of its own)."""
    USAGE = 2
    """Bad command line (click's own code)."""
    UNREACHABLE = 3
    """The gateway could not be reached (connection refused, timeout)."""
    UNAUTHENTICATED = 4
    """No token, or the gateway refused it (401)."""
    FORBIDDEN = 5
    """The token lacks a role or an experiment (403)."""
    NOT_FOUND = 6
    """404."""
    CONFLICT = 7
    """409: an illegal state change, a duplicate label, ..."""
    INVALID = 8
    """400, 413 or 422: the request body or query was refused; each bad field is named."""
    SERVER_ERROR = 9
    """5xx: a service failed or is down behind the gateway."""
    UNHEALTHY = 10
    """``prodflow health``: some part of the system is not ok."""
    CHECKSUM = 11
    """``prodflow grab``: a file could not be downloaded, or failed its size or adler32 check; ``prodflow provenance``:
    the local file's size or adler32 is not the recorded one."""
    WORK_FAILED = 12
    """Awaited work ended badly: a watched label with failed or cancelled jobs, a followed cycle run that failed."""
    TIMEOUT = 13
    """A ``--timeout`` passed before the awaited state was reached."""


def exit_code_for_status(status: int) -> ExitCode:
    """The exit code for an HTTP error status."""
    by_status = {
        401: ExitCode.UNAUTHENTICATED,
        403: ExitCode.FORBIDDEN,
        404: ExitCode.NOT_FOUND,
        409: ExitCode.CONFLICT,
        400: ExitCode.INVALID,
        413: ExitCode.INVALID,
        422: ExitCode.INVALID,
    }
    if status in by_status:
        return by_status[status]
    return ExitCode.SERVER_ERROR if status >= 500 else ExitCode.FAILURE


def describe() -> str:
    """One line per exit code, for ``--help``."""
    return "\n".join(f"{code.value:>3}  {code.name.lower().replace('_', ' ')}" for code in ExitCode)
