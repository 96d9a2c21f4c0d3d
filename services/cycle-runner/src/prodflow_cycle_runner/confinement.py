"""Untrusted names, paths and command words: what may reach the file system or a command line.

Every check raises :class:`UnsafeInput` naming the field; routes turn it into a 422 problem. Nothing here runs a
shell: commands are argument lists, so these checks keep paths inside the production root and stop a value from
being read as an option (a leading ``-``) or from smuggling shell syntax into a dataflow that builds shell lines.
"""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath

from prodflow_core.credentials import split_userinfo

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
REF = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_./-]{0,199}$")
TARGET = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.,+=@/-]{0,499}$")
WORD = re.compile(r"^[A-Za-z0-9_./:=+,@%-]+$")
SHELL_META = frozenset(";&|`$<>\\\"'*?(){}[]!#~\n\r\t\0")


class UnsafeInput(ValueError):
    """A value that would escape the production root or inject into a command."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def check_name(value: str, field: str = "name") -> str:
    """A cycle, setup or repository name: one path segment of letters, digits, ``_ . -``, not ``.``/``..``."""
    if not NAME.match(value) or set(value) == {"."}:
        raise UnsafeInput(field, "must be 1-64 letters, digits, '_', '.', '-', starting with a letter or digit")
    return value


def check_ref(value: str, field: str = "ref") -> str:
    """A git ref (branch, tag or commit) that git cannot read as an option or a path escape."""
    if not REF.match(value) or ".." in value or value.endswith((".lock", "/")) or "//" in value:
        raise UnsafeInput(field, "not an acceptable git ref")
    return value


def check_git_url(value: str, allowed_schemes: set[str], field: str = "url") -> str:
    """A repository URL with an allowed scheme (``file``, ``https``, ...) or scp-like ``user@host:path``."""
    if not value or value.startswith("-") or any(c in SHELL_META or c.isspace() for c in value):
        raise UnsafeInput(field, "not an acceptable repository URL")
    scheme, sep, _rest = value.partition("://")
    if sep:
        if scheme not in allowed_schemes:
            raise UnsafeInput(field, f"scheme {scheme!r} is not allowed ({', '.join(sorted(allowed_schemes))})")
        _bare, user, password = split_userinfo(value)
        # Kept in the cycle, its events and its answers, seen by every reader: a password, or a name over https
        # (https://<token>@host), may be a secret. ssh://git@host names an account only.
        if password is not None or (user is not None and scheme != "ssh"):
            raise UnsafeInput(field, "no password or token in a repository URL: use a git credential helper or ssh")
        return value
    if "ssh" in allowed_schemes and re.match(r"^[A-Za-z0-9_.-]+@[A-Za-z0-9_.-]+:[A-Za-z0-9_./~-]+$", value):
        return value
    raise UnsafeInput(field, "use a URL with a scheme (file://, https://, ssh://) or user@host:path")


def inside(root: Path, relative: str | PurePosixPath, field: str = "path", *, follow_links: bool = True) -> Path:
    """``root / relative``; refused if absolute, climbing with ``..`` or resolving (symlinks too) outside ``root``.

    ``follow_links=False`` checks the path as written, for a link the service itself made (the ``install`` link
    to a shared environment) and returns it unresolved.
    """
    text = str(relative)
    pure = PurePosixPath(text)
    if not text or "\0" in text or pure.is_absolute() or ".." in pure.parts:
        raise UnsafeInput(field, "must be a relative path without '..'")
    base = root.resolve()
    candidate = (base / pure).resolve() if follow_links else base / pure
    if candidate != base and not candidate.is_relative_to(base):
        raise UnsafeInput(field, "resolves outside the cycle")
    return candidate


def check_target(value: str, cycle_dir: Path, field: str = "targets") -> str:
    """A Snakemake target (a file of the cycle or a rule name): no option, no shell syntax, no escape."""
    if not TARGET.match(value):
        raise UnsafeInput(field, f"{value!r} is not an acceptable target (letters, digits and _.,+=@/- only)")
    inside(cycle_dir, value, field)
    return value


def check_words(value: str, field: str) -> list[str]:
    """A command prefix (``execenv.cmd``/``arg``) split on blanks into plain words, none of them shell syntax."""
    words = value.split()
    for word in words:
        if not WORD.match(word):
            raise UnsafeInput(field, f"{word!r} holds characters that are not allowed in a command word")
    if words and words[0].startswith("-"):
        raise UnsafeInput(field, "must start with a program, not an option")
    return words
