"""Helpers of the CLI tests: run ``prodflow`` in-process against a real gateway."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prodflow_cli.main import app
from prodflow_gateway.settings import GatewaySettings
from typer.testing import CliRunner

ADMIN_TOKEN = "pf_cli-test-admin-token"


@dataclass(frozen=True)
class Gateway:
    """A served gateway."""

    url: str
    settings: GatewaySettings


@dataclass
class Result:
    """What one command printed and how it ended."""

    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        """stdout as one JSON document."""
        return json.loads(self.stdout)

    def lines(self) -> list[Any]:
        """stdout as JSON lines."""
        return [json.loads(line) for line in self.stdout.splitlines() if line.strip()]


@dataclass
class Cli:
    """``prodflow`` pointed at one gateway, with its own config file."""

    url: str
    config: Path
    token: str | None = ADMIN_TOKEN

    def __call__(self, *args: str, token: str | None = None, input: str | None = None) -> Result:
        env = {
            "PRODFLOW_URL": self.url,
            "PRODFLOW_CONFIG": str(self.config),
            "PRODFLOW_TOKEN": token or self.token or "",
        }
        outcome = CliRunner().invoke(app, list(args), env=env, input=input, catch_exceptions=False)
        return Result(outcome.exit_code, outcome.stdout, outcome.stderr)
