"""Command templates: the shell line a job runs, with ``{placeholders}`` filled by shell-quoted job values.

What a job executes is written by admins only (the catalog's module ``command``, a site's ``command_template``);
requesters and managers control only the values. Safety rests on two rules checked here:

- every placeholder stands outside quotes in the template (:func:`quoted_placeholders`): the value is quoted when
  filled, and a quoted value inside ``"..."`` would still see ``$(...)`` expanded;
- a value never holds a NUL byte (:func:`fields_with_nul`): no argv or shell line can carry one.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable, Mapping
from typing import Any, Final

PLACEHOLDER: Final = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
"""A ``{name}`` placeholder of a command template."""
JOB_PLACEHOLDERS: Final = frozenset(
    "experiment label module run chunk pass events seed job_id rat_v ratdb_tag t_run t_format output_dir".split()  # noqa: SIM905
)
"""What every command template may use; a module's template parameters come on top, by name."""


class UnsafeValue(ValueError):
    """A placeholder value no shell line can carry (a NUL byte)."""


def unknown_placeholders(command: str, template_params: Iterable[str]) -> list[str]:
    """Placeholders of a command template that no job of the module can fill."""
    return sorted(set(PLACEHOLDER.findall(command)) - JOB_PLACEHOLDERS - set(template_params))


def quoted_placeholders(command: str) -> list[str]:
    """Placeholders that stand inside single or double quotes (or after a backslash) in ``command``.

    Scans the line as POSIX sh reads quotes: ``'...'`` takes everything literally, ``"..."`` and unquoted text honour
    backslash escapes.
    """
    found: list[str] = []
    quote = ""
    index = 0
    while index < len(command):
        char = command[index]
        if char == "\\" and quote != "'":
            if command.startswith("{", index + 1) and PLACEHOLDER.match(command, index + 1):
                found.append(PLACEHOLDER.match(command, index + 1)[1])  # type: ignore[index]
            index += 2
            continue
        if char in "'\"" and quote in ("", char):
            quote = "" if quote else char
        elif char == "{" and (match := PLACEHOLDER.match(command, index)):
            if quote:
                found.append(match[1])
            index = match.end()
            continue
        index += 1
    return sorted(set(found))


def template_problems(command: str, template_params: Iterable[str]) -> list[str]:
    """Why ``command`` cannot be a command template (empty if it can): unknown or quoted placeholders."""
    problems = []
    if unknown := unknown_placeholders(command, template_params):
        known = sorted(JOB_PLACEHOLDERS | set(template_params))
        problems.append(f"uses unknown placeholders {unknown}; known: {known}")
    if quoted := quoted_placeholders(command):
        problems.append(f"has placeholders inside quotes or after a backslash {quoted}: values are quoted when filled")
    return problems


def fields_with_nul(data: Any, path: str = "") -> list[str]:
    """Dotted paths of the strings in ``data`` (nested dicts and lists, keys included) that hold a NUL byte."""
    if isinstance(data, str):
        return [path] if "\0" in data else []
    if isinstance(data, Mapping):
        items: Iterable[tuple[Any, Any]] = data.items()
    elif isinstance(data, list | tuple):
        items = enumerate(data)
    else:
        return []
    found = []
    for key, value in items:
        inner = f"{path}.{key}" if path else str(key)
        found += [inner] if isinstance(key, str) and "\0" in key else []
        found += fields_with_nul(value, inner)
    return found


def fill(template: str, values: Mapping[str, Any]) -> str:
    """``template`` with each ``{name}`` replaced by its shell-quoted value (``None`` → empty).

    Raises :class:`UnsafeValue` for a value holding a NUL byte.
    """
    if bad := fields_with_nul(values):
        raise UnsafeValue(f"values of {bad} hold a NUL byte")

    def one(match: re.Match[str]) -> str:
        value = values.get(match[1])
        if value is None:
            return ""
        text = f"{value:g}" if isinstance(value, float) else str(value)
        return shlex.quote(text)

    return PLACEHOLDER.sub(one, template)
