"""Typed CouchDB errors."""

from __future__ import annotations


class CouchError(Exception):
    """CouchDB answered with an error status."""

    def __init__(self, status: int, error: str, reason: str) -> None:
        super().__init__(f"{status} {error}: {reason}")
        self.status = status
        self.error = error
        self.reason = reason


class DocumentConflict(CouchError):
    """409: the document changed since the ``_rev`` we hold (re-read and re-apply)."""


class DocumentNotFound(CouchError):
    """404: no such document or database."""


def error_for(status: int, error: str, reason: str) -> CouchError:
    """The most specific error type for a CouchDB error answer."""
    if status == 409:
        return DocumentConflict(status, error, reason)
    if status == 404:
        return DocumentNotFound(status, error, reason)
    return CouchError(status, error, reason)
