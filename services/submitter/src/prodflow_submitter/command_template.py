"""Filling a module's command template for one job (the catalog's ``command``, FORMATS.md placeholders)."""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import Any

PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
JOB_PLACEHOLDERS = frozenset(
    {"experiment", "label", "module", "run", "chunk", "pass", "events", "seed", "rat_v", "ratdb_tag",
     "t_run", "t_format", "output_dir", "job_id"}
)  # fmt: skip
"""What every template may use; a module's template parameters come on top, by name."""


def unknown_placeholders(template: str, template_params: set[str]) -> list[str]:
    """Placeholders of ``template`` that no job can fill."""
    return sorted(set(PLACEHOLDER.findall(template)) - JOB_PLACEHOLDERS - template_params)


def job_values(doc: Mapping[str, Any], entry: Mapping[str, Any], output_dir: Path) -> dict[str, Any]:
    """The placeholder values of one job document (``entry``: its module entry in jobs.json)."""
    return {
        **dict(doc.get("template") or {}),
        "experiment": doc["experiment"], "label": doc["label"], "module": doc["module"], "run": doc["run"],
        "chunk": doc["chunk"], "pass": doc["pass"], "events": doc.get("events"), "seed": doc["seed"],
        "rat_v": doc.get("rat_v"), "ratdb_tag": doc.get("ratdb_tag"), "t_run": entry.get("t_run"),
        "t_format": entry.get("t_format"), "output_dir": str(output_dir), "job_id": doc["_id"],
    }  # fmt: skip


def fill(template: str, values: Mapping[str, Any]) -> str:
    """``template`` with each ``{name}`` replaced by its shell-quoted value (``None`` → empty)."""

    def one(match: re.Match[str]) -> str:
        value = values.get(match[1])
        if value is None:
            return ""
        text = f"{value:g}" if isinstance(value, float) else str(value)
        return shlex.quote(text)

    return PLACEHOLDER.sub(one, template)
