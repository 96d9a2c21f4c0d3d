"""Credentials in URLs: taken out for authentication, hidden for display.

A CouchDB URL may carry its credentials as userinfo (``http://admin:<password>@host:5984``). Clients take them
out with :func:`split_userinfo` and send them as an ``Authorization`` header, so the URL they keep (and that
HTTP libraries log) has none; anything shown to a person (banners, health answers, problems, logs) goes
through :func:`redact_url` first.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from urllib.parse import unquote, urlsplit, urlunsplit

REDACTED = "***"
# Settings variables of our services (see ServiceSettings and each service's prefix) ...
SERVICE_ENV_PREFIXES = ("PRODFLOW_", "GATEWAY_", "REQUEST_API_", "SUBMITTER_", "MONITOR_", "CYCLE_RUNNER_")
# ... whose name says they hold a secret, or a URL that may carry one as userinfo. Kept in step with the copy in
# backends/local_runner.py, which runs without prodflow installed (test_credentials checks they agree).
SECRET_ENV_WORDS = ("SECRET", "PASSWORD", "TOKEN", "_URL")
# scheme://user:password@ — the password runs to the last "@" before the host (an unencoded "@" in it included).
_URL_PASSWORD = re.compile(r"(?P<head>\b[A-Za-z][A-Za-z0-9+.-]*://[^\s:/@]*:)[^\s/?#]*@")
# scheme://name@ without a password: the name may be a token (https://<token>@github.com/...).
_URL_USER_ONLY = re.compile(r"(?P<head>\b[A-Za-z][A-Za-z0-9+.-]*://)[^\s:/@?#]+@")
# Query parameters that carry a secret (the API takes tokens only as a header, but a client may still send one).
_SECRET_PARAM = re.compile(
    r"(?P<head>[?&](?:access_token|token|password|passwd|pwd|secret|api_key|apikey|key)=)[^&#\s\"']+", re.IGNORECASE
)


def redact_url(text: str) -> str:
    """``text`` with the password of every URL's userinfo replaced by ``***`` (``http://admin:***@host:5984``), a
    userinfo without a password as a whole (``https://***@host``: it may be a token), and the value of query
    parameters named like a secret (``?token=***``).

    Works on a URL and on text that contains URLs (log messages, exception texts, access-log lines); text
    without one is returned as is.
    """
    text = _URL_PASSWORD.sub(lambda m: f"{m.group('head')}{REDACTED}@", text)
    text = _URL_USER_ONLY.sub(lambda m: f"{m.group('head')}{REDACTED}@", text)
    return _SECRET_PARAM.sub(lambda m: f"{m.group('head')}{REDACTED}", text)


def split_userinfo(url: str) -> tuple[str, str | None, str | None]:
    """``url`` without its userinfo, and the user name and password it carried (percent-decoded; ``None`` if absent).

    ``split_userinfo("http://admin:p%40ss@h:5984/")`` is ``("http://h:5984/", "admin", "p@ss")``.
    """
    parts = urlsplit(url)
    userinfo, at, host = parts.netloc.rpartition("@")
    if not at:
        return url, None, None
    user, colon, password = userinfo.partition(":")
    bare = urlunsplit(parts._replace(netloc=host))
    return bare, unquote(user), unquote(password) if colon else None


def is_service_secret(name: str) -> bool:
    """True for an environment variable that configures a service with a secret (``PRODFLOW_IDENTITY_SECRET``,
    ``PRODFLOW_COUCHDB_URL``, ``REQUEST_API_SMTP_PASSWORD``, ...)."""
    upper = name.upper()
    return upper.startswith(SERVICE_ENV_PREFIXES) and any(word in upper for word in SECRET_ENV_WORDS)


def without_service_secrets(environ: Mapping[str, str]) -> dict[str, str]:
    """``environ`` less the services' secrets: the environment for code we run but do not trust with them
    (jobs, backend commands, a cycle's workflow and installs)."""
    return {name: value for name, value in environ.items() if not is_service_secret(name)}
