"""Credentials in URLs: taken out for authentication, hidden for display.

A CouchDB URL may carry its credentials as userinfo (``http://admin:<password>@host:5984``). Clients take them
out with :func:`split_userinfo` and send them as an ``Authorization`` header, so the URL they keep (and that
HTTP libraries log) has none; anything shown to a person (banners, health answers, problems, logs) goes
through :func:`redact_url` first.
"""

from __future__ import annotations

import re
from urllib.parse import unquote, urlsplit, urlunsplit

REDACTED = "***"
# scheme://user:password@ — the password runs to the last "@" before the host (an unencoded "@" in it included).
_URL_PASSWORD = re.compile(r"(?P<head>\b[A-Za-z][A-Za-z0-9+.-]*://[^\s:/@]*:)[^\s/?#]*@")


def redact_url(text: str) -> str:
    """``text`` with the password of every URL's userinfo replaced by ``***`` (``http://admin:***@host:5984``).

    Works on a URL and on text that contains URLs (log messages, exception texts); text without one is returned
    as is.
    """
    return _URL_PASSWORD.sub(lambda m: f"{m.group('head')}{REDACTED}@", text)


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
