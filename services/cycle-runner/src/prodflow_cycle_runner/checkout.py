"""Git checkouts of a cycle's dataflow, metadata and software at a ref, with the exact commit recorded."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from prodflow_cycle_runner.processes import CommandFailed, output_of


@dataclass(frozen=True)
class Checkout:
    """A repository checked out in a cycle."""

    url: str
    ref: str
    commit: str
    path: str

    def as_dict(self) -> dict[str, str]:
        """JSON form."""
        return {"url": self.url, "ref": self.ref, "commit": self.commit, "path": self.path}


class CheckoutFailed(RuntimeError):
    """Cloning or checking out failed (unreachable URL, unknown ref)."""


def git_env(protocols: str) -> dict[str, str]:
    """The environment of git commands: no prompts, no config from the user, only the allowed transports."""
    return {
        **{k: v for k, v in os.environ.items() if k in {"PATH", "HOME", "LANG", "SSL_CERT_FILE", "SSH_AUTH_SOCK"}},
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_ALLOW_PROTOCOL": protocols,
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_ADVICE": "0",
    }


async def checkout(git: str, url: str, ref: str, dest: Path, env: dict[str, str], relative_to: Path) -> Checkout:
    """Clone ``url`` into ``dest`` (which must not exist or be empty) and detach at ``ref``."""
    _prepare(dest)
    try:
        await output_of([git, "clone", "--quiet", "--no-checkout", "--", url, str(dest)], env=env)
        commit = await _resolve(git, dest, ref, env)
        await output_of([git, "-C", str(dest), "checkout", "--quiet", "--detach", commit], env=env)
    except CommandFailed as exc:
        shutil.rmtree(dest, ignore_errors=True)
        raise CheckoutFailed(f"{url} at {ref}: {exc.output.strip()[-500:]}") from exc
    return Checkout(url, ref, commit, str(dest.relative_to(relative_to)))


def _prepare(dest: Path) -> None:
    if dest.exists() and any(dest.iterdir()):
        raise CheckoutFailed(f"{dest.name} already holds files")
    dest.parent.mkdir(parents=True, exist_ok=True)


async def _resolve(git: str, repo: Path, ref: str, env: dict[str, str]) -> str:
    """The commit of ``ref``: a local branch, tag or commit, else the remote branch ``origin/<ref>``."""
    for candidate in (ref, f"origin/{ref}"):
        try:
            out = await output_of(
                [
                    git,
                    "-C",
                    str(repo),
                    "rev-parse",
                    "--verify",
                    "--quiet",
                    "--end-of-options",
                    f"{candidate}^{{commit}}",
                ],
                env=env,
            )
            return out.strip()
        except CommandFailed:
            continue
    raise CheckoutFailed(f"unknown ref {ref!r}")
