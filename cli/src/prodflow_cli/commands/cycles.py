"""``prodflow cycle init|list|show|install|run|runs|logs|cancel|invalidate|shell|env``: LEGEND production cycles."""

from __future__ import annotations

import json
import os
import shlex
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from prodflow_cli.client import Gateway, segment
from prodflow_cli.cycle_env import CycleEnvironment, command_line, export_lines, login_shell, process_environment
from prodflow_cli.errors import CliError, Unreachable
from prodflow_cli.exits import ExitCode
from prodflow_cli.files import read_mapping
from prodflow_cli.session import JsonOpt, command, gateway, output, state

app = typer.Typer(
    help="Production cycles: init, install software, run Snakemake, logs, invalidate.", no_args_is_help=True
)

API = "/api/cycles"
FINAL = {"succeeded", "failed", "cancelled", "interrupted"}
CYCLE_COLUMNS = [
    ("name", "cycle"),
    ("experiment", "experiment"),
    ("setup", "setup"),
    ("state", "state"),
    ("software_state", "software"),
    ("active_run", "active run"),
    ("queued_runs", "queued"),
    ("created_at", "created"),
]
RUN_COLUMNS = [
    ("id", "run"),
    ("kind", "kind"),
    ("state", "state"),
    ("targets", "targets"),
    ("progress_text", "progress"),
    ("requested_by", "by"),
    ("created_at", "queued"),
    ("message", "message"),
]
Cycle = Annotated[str, typer.Argument(help="The cycle's name.")]
FollowOpt = Annotated[bool, typer.Option("--follow", "-f", help="Stream the log until the run ends.")]


def _repository(text: str, what: str) -> dict[str, str]:
    """``URL[@REF]`` → ``{"url", "ref"}`` (a ref after the last '@' that follows the last '/')."""
    url, at, ref = text.rpartition("@")
    if not at or "/" in ref or not url or url.endswith(":"):
        return {"url": text, "ref": "main"}
    if not ref:
        raise CliError(f"{what}: empty ref after '@' in {text!r}", ExitCode.USAGE)
    return {"url": url, "ref": ref}


def _pairs(values: list[str] | None, what: str) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for value in values or []:
        key, eq, rest = value.partition("=")
        if not eq or not key:
            raise CliError(f"{what}: expected NAME=VALUE, got {value!r}", ExitCode.USAGE)
        pairs[key] = rest
    return pairs


def _run_row(run: dict[str, Any]) -> dict[str, Any]:
    progress = run.get("progress") or {}
    done, total = progress.get("done"), progress.get("total")
    text = f"{done}/{total}" if total else "-"
    return {**run, "targets": " ".join((run.get("request") or {}).get("targets") or []) or "-", "progress_text": text}


@command(app, "init")
def init(
    name: Cycle,
    dataflow: Annotated[str, typer.Option(help="Dataflow repository: URL[@REF] (default ref main).")],
    metadata: Annotated[str, typer.Option(help="Metadata repository: URL[@REF].")],
    software: Annotated[
        list[str] | None, typer.Option(help="Software checkout NAME=URL[@REF], installed from source (repeat).")
    ] = None,
    pkg: Annotated[list[str] | None, typer.Option(help="Pinned package NAME=SPEC, e.g. pygama=pygama==2.6.2.")] = None,
    experiment: Annotated[str, typer.Option()] = "legend",
    setup: Annotated[str, typer.Option()] = "l200",
    execenv_cmd: Annotated[str, typer.Option(help="Container prefix command (execenv.cmd).")] = "",
    execenv_arg: Annotated[str, typer.Option(help="Its arguments (execenv.arg).")] = "",
    slurm_partition: Annotated[str | None, typer.Option(help="Partition of the cycle's Slurm runs.")] = None,
    slurm_account: Annotated[str | None, typer.Option(help="Account of its Slurm runs (default: none).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Create a cycle: its tree, config.json and checkouts at pinned refs (like dataprod-init-cycle)."""
    body: dict[str, Any] = {
        "name": name,
        "experiment": experiment,
        "setup": setup,
        "dataflow": _repository(dataflow, "--dataflow"),
        "metadata": _repository(metadata, "--metadata"),
        "software": [{"name": n, **_repository(u, "--software")} for n, u in _pairs(software, "--software").items()],
        "execenv": {"cmd": execenv_cmd, "arg": execenv_arg},
    }
    if pkg:
        body["pkg_versions"] = _pairs(pkg, "--pkg")
    if slurm_partition or slurm_account:
        body["slurm"] = {"partition": slurm_partition, "account": slurm_account}
    cycle = gateway().post(API, body)
    out = output(as_json)
    if out.as_json:
        out.data(cycle)
    else:
        commits = ", ".join(f"{k} {str(v.get('commit', ''))[:10]}" for k, v in (cycle.get("checkouts") or {}).items())
        out.say(f"cycle {cycle['name']} created at {cycle['path']} ({commits})")


@command(app, "list")
def list_cycles(as_json: JsonOpt = False) -> None:
    """Every cycle with its state and runs."""
    cycles = gateway().get(API)
    rows = [{**c, "software_state": (c.get("software") or {}).get("state")} for c in cycles]
    output(as_json).table(cycles if as_json else rows, CYCLE_COLUMNS)


@command(app, "show")
def show(name: Cycle, as_json: JsonOpt = False) -> None:
    """One cycle: checkouts, software, active and queued runs."""
    cycle = gateway().get(f"{API}/{segment(name)}")
    fields = [("name", "cycle"), ("experiment", "experiment"), ("setup", "setup"), ("path", "path"),
              ("state", "state"), ("checkouts", "checkouts"), ("software", "software"),
              ("active_run", "active run"), ("queued_runs", "queued"), ("created_by", "by"),
              ("created_at", "created")]  # fmt: skip
    output(as_json).fields(cycle, fields)


def _started(client: Gateway, name: str, run: dict[str, Any], follow: bool, as_json: bool) -> None:
    out = output(as_json)
    if follow:
        out.note(f"{run['id']} queued; following its log (Ctrl-C stops following, not the run)")
        _follow_log(client, name, run["id"])
        final = client.get(f"{API}/{segment(name)}/runs/{segment(run['id'])}")
        if out.as_json:
            out.data(final)
        else:
            out.note(f"{final['id']}: {final['state']} {final.get('message') or ''}".rstrip())
        if final["state"] != "succeeded":
            raise typer.Exit(int(ExitCode.WORK_FAILED))
        return
    if out.as_json:
        out.data(run)
    else:
        out.say(f"{run['id']} {run['state']}: follow with 'prodflow cycle logs {name} {run['id']} -f'")


@command(app, "install")
def install(
    name: Cycle,
    reinstall: Annotated[bool, typer.Option("--reinstall", "-r", help="Rebuild the environment from scratch.")] = False,
    follow: FollowOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Install the cycle's pinned software into its own environment (like dataprod-install-sw)."""
    client = gateway()
    run = client.post(f"{API}/{segment(name)}/software", {"reinstall": reinstall})
    _started(client, name, run, follow, as_json)


@command(app, "run")
def run(
    name: Cycle,
    targets: Annotated[list[str], typer.Argument(help="Snakemake targets, e.g. all-l200-p03-r001-phy-dsp.gen.")],
    cores: Annotated[int, typer.Option("--cores", "-j", min=1)] = 1,
    executor: Annotated[str, typer.Option(help="local or slurm")] = "local",
    option: Annotated[
        list[str] | None, typer.Option("--option", "-O", help="Allowed Snakemake option, e.g. keep-going (repeat).")
    ] = None,
    follow: FollowOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Queue a Snakemake run of TARGETS in the cycle (one run at a time per cycle)."""
    client = gateway()
    body = {"targets": targets, "cores": cores, "executor": executor, "options": option or []}
    started = client.post(f"{API}/{segment(name)}/runs", body)
    _started(client, name, started, follow, as_json)


@command(app, "runs")
def runs(
    name: Cycle,
    kind: Annotated[str | None, typer.Option(help="snakemake or install")] = None,
    state: Annotated[str | None, typer.Option()] = None,
    as_json: JsonOpt = False,
) -> None:
    """Runs and installs of a cycle, newest first."""
    found = gateway().get(f"{API}/{segment(name)}/runs", {"kind": kind, "state": state})
    output(as_json).table(found if as_json else [_run_row(r) for r in found], RUN_COLUMNS)


@command(app, "cancel")
def cancel(name: Cycle, run_id: Annotated[str, typer.Argument()], as_json: JsonOpt = False) -> None:
    """Cancel a queued run, or stop a running one."""
    result = gateway().post(f"{API}/{segment(name)}/runs/{segment(run_id)}/cancel")
    output(as_json).fields(_run_row(result), [("id", "run"), ("state", "state"), ("message", "message")])


def _follow_log(client: Gateway, name: str, run_id: str, *, follow: bool = True, offset: int = 0) -> int:
    """Copy the run's log to stdout from ``offset``; when following, until the run ends (resuming after a drop)."""
    path = f"{API}/{segment(name)}/runs/{segment(run_id)}/log"
    while True:
        try:
            with client.stream(
                path, params={"follow": follow or None, "offset": offset}, headers={"Accept": "text/plain"}, read_s=120
            ) as response:
                for chunk in response.iter_bytes():
                    sys.stdout.buffer.write(chunk)
                    sys.stdout.flush()
                    offset += len(chunk)
            return offset
        except Unreachable:
            if not follow:
                raise
            state = client.get(f"{API}/{segment(name)}/runs/{segment(run_id)}")["state"]
            if state in FINAL:
                follow = False  # read what is left, then stop


@command(app, "logs")
def logs(
    name: Cycle,
    run_id: Annotated[str, typer.Argument()],
    follow: FollowOpt = False,
    offset: Annotated[int, typer.Option(min=0, help="Start at this byte.")] = 0,
) -> None:
    """A run's log (Snakemake or installer output); --follow streams it live."""
    _follow_log(gateway(), name, run_id, follow=follow, offset=offset)


@command(app, "invalidate")
def invalidate(
    name: Cycle,
    target: Annotated[str | None, typer.Option(help="A .gen target, e.g. all-l200-p03-r001-phy-dsp.gen.")] = None,
    tier: Annotated[str | None, typer.Option()] = None,
    period: Annotated[str | None, typer.Option()] = None,
    run_key: Annotated[str | None, typer.Option("--run")] = None,
    datatype: Annotated[str | None, typer.Option()] = None,
    apply: Annotated[bool, typer.Option("--apply", help="Really remove (default: a dry run that lists).")] = False,
    delete: Annotated[bool, typer.Option("--delete", help="Delete instead of moving to the cycle's trash.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Remove generated files so the next run rebuilds them; a dry run first unless --apply."""
    body: dict[str, Any] = {"dry_run": not apply, "trash": not delete}
    body.update({k: v for k, v in {"target": target, "tier": tier, "period": period, "run": run_key,
                                    "datatype": datatype}.items() if v is not None})  # fmt: skip
    result = gateway().post(f"{API}/{segment(name)}/invalidate", body)
    out = output(as_json)
    if out.as_json:
        out.data(result)
        return
    out.table(result["files"], [("path", "file"), ("size", "bytes")])
    verb = (
        "would remove" if result["dry_run"] else ("moved to " + str(result["trash"]) if result["trash"] else "removed")
    )
    out.say(f"{result['count']} files ({result['bytes']} bytes) of tiers {', '.join(result['tiers'])}: {verb}")
    if result["dry_run"] and result["count"]:
        out.note("run again with --apply to remove them")


def merge_patch_of(assignments: list[str]) -> dict[str, Any]:
    """``setups.l200.pkg_versions.pygama=pygama==2.6.2`` → a nested JSON merge patch; values are JSON if they
    parse as JSON (``null`` removes a key), else strings."""
    patch: dict[str, Any] = {}
    for assignment in assignments:
        path, eq, raw = assignment.partition("=")
        keys = [key for key in path.split(".") if key]
        if not eq or not keys:
            raise CliError(f"expected KEY.PATH=VALUE, got {assignment!r}", ExitCode.USAGE)
        try:
            value: Any = json.loads(raw)
        except ValueError:
            value = raw
        node = patch
        for key in keys[:-1]:
            child = node.setdefault(key, {})
            if not isinstance(child, dict):
                raise CliError(f"{path}: {key} is given a value and keys at once", ExitCode.USAGE)
            node = child
        node[keys[-1]] = value
    return patch


@command(app, "software")
def software(name: Cycle) -> None:
    """The cycle's environment: state, path, requirements and the resolved version of every package."""
    output(True).data(gateway().get(f"{API}/{segment(name)}/software"))


@command(app, "config")
def config(name: Cycle) -> None:
    """The cycle's config.json (legend-prodenv's shape)."""
    output(True).data(gateway().get(f"{API}/{segment(name)}/config"))


@command(app, "set")
def set_config(
    name: Cycle,
    assignments: Annotated[
        list[str] | None, typer.Argument(help="KEY.PATH=VALUE, e.g. setups.l200.execenv.cmd=apptainer")
    ] = None,
    patch_file: Annotated[Path | None, typer.Option("--patch", help="A JSON merge patch (RFC 7396) file.")] = None,
) -> None:
    """Change config.json values (validated by the service; refused while runs are queued)."""
    patch = read_mapping(patch_file, "a JSON merge patch") if patch_file else {}
    patch.update(merge_patch_of(assignments or []))
    if not patch:
        raise CliError("nothing to change: give KEY.PATH=VALUE or --patch FILE", ExitCode.USAGE)
    output(True).data(gateway().patch(f"{API}/{segment(name)}", patch))


def _environment(name: str) -> tuple[CycleEnvironment, dict[str, Any]]:
    doc: dict[str, Any] = gateway().get(f"{API}/{segment(name)}/environment")
    env = CycleEnvironment.of(doc)
    env.require_here()
    return env, doc


@command(app, "env")
def env(name: Cycle, as_json: JsonOpt = False) -> None:
    """Print the cycle's software environment as shell lines: eval "$(prodflow cycle env NAME)".

    Only on a host that shares the cycle's file system.
    """
    cycle_env, doc = _environment(name)
    out = output(as_json)
    if out.as_json:
        out.data(doc)
        return
    if cycle_env.execenv:
        out.note(f"the cycle's commands run under '{shlex.join(cycle_env.execenv)}': 'prodflow cycle shell' enters it")
    sys.stdout.write("\n".join(export_lines(cycle_env)) + "\n")


@command(app, "shell", context_settings={"allow_interspersed_args": False})
def shell(
    name: Cycle,
    command_: Annotated[
        list[str] | None, typer.Argument(metavar="COMMAND", help="Run this instead of an interactive shell.")
    ] = None,
) -> None:
    """A shell (or COMMAND) in the cycle's folder and software environment, like dataprod-load-sw.

    Only on a host that shares the cycle's file system; the exit status is the shell's (or COMMAND's).
    """
    cycle_env, _doc = _environment(name)
    if command_ and command_[0] == "--":  # after NAME every word is COMMAND's, so click keeps a '--' for us
        command_ = command_[1:]
    argv = command_line(cycle_env, command_ or [], login_shell(os.environ))
    environ = process_environment(cycle_env, os.environ) | {"PWD": str(cycle_env.path)}
    if not command_:
        output().note(f"cycle {name}: environment {cycle_env.env_path}; 'exit' leaves")
    state().close()
    try:
        os.chdir(cycle_env.path)
    except OSError as exc:
        raise CliError(f"cannot enter {cycle_env.path}: {exc.strerror}") from exc
    try:
        os.execvpe(argv[0], argv, environ)  # noqa: S606 - the user asked for this shell or command, run as given
    except OSError as exc:
        raise CliError(f"cannot run {argv[0]}: {exc.strerror}") from exc
