"""Files the service installs into cycles: the Snakemake logger plugin (``logger_plugin/``)."""

from __future__ import annotations

from pathlib import Path

LOGGER_PLUGIN_DIR = Path(__file__).parent / "logger_plugin"
"""The source tree of ``snakemake-logger-plugin-prodflow``, installed into every cycle's environment."""
