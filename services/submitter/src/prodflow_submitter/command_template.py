"""The placeholder values of one job (FORMATS.md placeholders); :func:`prodflow_core.command_template.fill` fills."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any


def job_values(doc: Mapping[str, Any], entry: Mapping[str, Any], output_dir: Path) -> dict[str, Any]:
    """The placeholder values of one job document (``entry``: its module entry in jobs.json)."""
    return {
        **dict(doc.get("template") or {}),
        "experiment": doc["experiment"], "label": doc["label"], "module": doc["module"], "run": doc["run"],
        "chunk": doc["chunk"], "pass": doc["pass"], "events": doc.get("events"), "seed": doc["seed"],
        "rat_v": doc.get("rat_v"), "ratdb_tag": doc.get("ratdb_tag"), "t_run": entry.get("t_run"),
        "t_format": entry.get("t_format"), "output_dir": str(output_dir), "job_id": doc["_id"],
    }  # fmt: skip
