"""The ``local`` backend's folder: its queue, slots, job files and change journal.

Standard library only: the wrapper (:mod:`local_runner`) imports it without prodflow. Everything a job's state
needs is in files, written atomically, so any process (submitter, monitor, after a restart) can read it:

    <root>/lock                         flock around claiming, so the concurrency limit holds across processes
    <root>/queue/<seq>-<n>              one entry per queued job (content: the job's name), FIFO by <seq>
    <root>/active/<n>                   one entry per started job until its slot is released
    <root>/jobs/<name>/queued           the job's name: queue and active entries are hard links to it
    <root>/jobs/<name>/spec.json        {name, command, output_dir, env, walltime_s, submitted_at}
    <root>/jobs/<name>/claimed          start time of the claim (the job left the queue)
    <root>/jobs/<name>/pid.json         {pid, start_ticks, started_at} of the wrapper
    <root>/jobs/<name>/child.json       {pgid, start_ticks} of the job's own process group
    <root>/jobs/<name>/result.json      {exit_code, signal, finished_at, timed_out}
    <root>/jobs/<name>/cancelled        cancel() was asked for
    <root>/jobs/<name>/stdout.log, stderr.log
    <root>/journal/<YYYYMMDDHH>         the change journal: one line (the quoted name) per job started, ended or
                                        cancelled, appended; an hour per file, files older than two days pruned
    <root>/swept                        when a wrapper last checked every slot for a dead wrapper
    <root>/idle/<pid>                   {pid, start_ticks} of a wrapper waiting for the next queued job (a hard
                                        link to the pid.json of the job it ran last)

A job's name is also its backend id. Whenever a wrapper finishes a job it claims the next queued one and runs it
itself (one interpreter start per slot, not per job), and starts wrappers for any other free slots, so the queue
drains even while no service is running. With nothing queued it waits ``LINGER_S`` for a job (a submitter that
sends as slots free keeps the queue empty: without the wait every job cost an interpreter start), and a pump
leaves queued jobs to waiting wrappers instead of starting new ones. The journal lets a reader (the monitor) ask
only about the jobs that changed instead of every active job.

Nothing on a job's way through deletes a file: the short-lived entries (queue, active, idle) are extra links to
files the job keeps, so removing one frees no inode. On ext4 without a journal (as on the machines this was
measured on), a new file's inode is chosen by skipping every inode of its group freed in the last seconds to
minutes (the kernel's ``recently_deleted``); three freed per job cost the bare backend 13 % of its CPU.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import functools
import heapq
import json
import os
import select
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote

RUNNER = Path(__file__).resolve().with_name("local_runner.py")
START_GRACE_S = 60.0  # a claimed job without pid.json after this long has lost its wrapper
DEFAULT_MAX_RUNNING = 4
SWEEP_GAP_S = 1.0  # a finishing wrapper checks every slot for dead wrappers at most this often
JOURNAL_KEEP_S = 2 * 86400
LINGER_S = 2.0
JOBS_PER_LAUNCHER = 256  # job folders on one launcher's command line
IDLE_POLL_S = 0.02  # without inotify: how often a waiting wrapper looks at the queue
WATCHED_LOOK_S = 0.25  # with inotify: how often it looks anyway (a slot freed elsewhere makes no queue event)
_IN_CREATE, _IN_MOVED_TO = 0x100, 0x80


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def folder_name(name: str) -> str:
    """A job name as a folder name (names of prodflow jobs pass through unchanged)."""
    return quote(name, safe="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.:-")


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write a file atomically: a reader sees the old content or the whole new one."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, sort_keys=True))
    os.replace(tmp, path)


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def start_ticks(pid: int) -> int | None:
    """The start time of ``pid`` in clock ticks since boot, or ``None`` if it is gone or a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    if fields[0] in {"Z", "X"}:
        return None
    return int(fields[19])


def wrapper_alive(pid_info: dict[str, Any]) -> bool:
    """True if the wrapper recorded in ``pid.json`` still runs (the start time guards against pid reuse)."""
    ticks = start_ticks(int(pid_info["pid"]))
    return ticks is not None and ticks == pid_info.get("start_ticks")


class WorkRoot:
    """The local backend's folder.

    ``remake``: make the work folder again if it is missing. The backend does (it owns the folder); a wrapper does
    not: a folder deleted under it stays deleted, and the wrapper leaves (:func:`local_runner.serve`).
    """

    def __init__(self, root: Path, *, remake: bool = True) -> None:
        self.root = root
        self.remake = remake
        self.queue = root / "queue"
        self.active = root / "active"
        self.jobs = root / "jobs"
        self.journal = root / "journal"
        self.idle = root / "idle"

    def ensure(self) -> None:
        """Make the missing folders; the work folder itself only with ``remake`` (else ``FileNotFoundError``)."""
        if self.remake:
            self.root.mkdir(parents=True, exist_ok=True)
        for folder in (self.queue, self.active, self.jobs, self.journal, self.idle):
            folder.mkdir(exist_ok=True)

    def note_change(self, name: str) -> None:
        """Append ``name`` to the change journal.

        One ``write`` of one short line to a file opened with ``O_APPEND``: concurrent wrappers' lines never
        interleave, and a reader sees whole lines (it consumes up to the last newline only).
        """
        path = self.journal / time.strftime("%Y%m%d%H", time.gmtime())
        try:
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        except FileNotFoundError:  # a work folder made before the journal existed
            self.ensure()
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, (folder_name(name) + "\n").encode())
        finally:
            os.close(fd)

    def prune_journal(self, keep_s: float = JOURNAL_KEEP_S) -> None:
        """Delete journal files older than ``keep_s`` (a reader that far behind polls every job anyway)."""
        oldest = time.strftime("%Y%m%d%H", time.gmtime(time.time() - keep_s))
        with contextlib.suppress(FileNotFoundError):
            for name in os.listdir(self.journal):
                if name < oldest:
                    (self.journal / name).unlink(missing_ok=True)

    def job_dir(self, name: str) -> Path:
        return self.jobs / folder_name(name)

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        with self._lock_file() as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _lock_file(self) -> IO[str]:
        """The lock file, opened. Only a folder without one gets its folders made first: five ``mkdir`` at every
        lock were a tenth of a wrapper's work."""
        try:
            return open(self.root / "lock", "r+")
        except FileNotFoundError:
            self.ensure()
            return open(self.root / "lock", "a+")

    def holds_slot(self, name: str) -> bool:
        """True while a started job still runs (or is starting)."""
        job = self.job_dir(name)
        if (job / "result.json").exists():
            return False
        pid_info = read_json(job / "pid.json")
        if pid_info is not None:
            return wrapper_alive(pid_info)
        claimed = read_json(job / "claimed")
        return claimed is not None and time.time() - float(claimed.get("t", 0)) < START_GRACE_S

    def pump(self, max_running: int, keep: int = 0, finished: str | None = None) -> list[str]:
        """Release the slots of finished jobs and start queued ones up to ``max_running``; returns those claimed.

        The first ``keep`` claimed jobs are not spawned: the calling wrapper runs them itself. A wrapper that has
        just ``finished`` a job releases that slot only and trusts the other slots' entries, except once per
        ``SWEEP_GAP_S``: checking every slot (files and ``/proc`` per running job, under the lock) at each job's end
        made the backend's throughput fall as ``max_running`` grew.
        """
        started: list[str] = []
        with self.locked():
            if finished is not None:
                (self.active / folder_name(finished)).unlink(missing_ok=True)
            sweep = finished is None or self._sweep_due()
            free = max_running - self._count_running(sweep)
            queued = os.listdir(self.queue)
            # Wrappers waiting for a job take the first queued ones themselves: new wrappers only for the rest.
            spare = max(0, min(free, len(queued)) - keep - self._count_idle(sweep))
            wanted = min(free, keep + spare)
            # Plain names and a partial sort: the queue can hold 100,000 entries and this runs once per job. Entries
            # of cancelled jobs are dropped on the way; past the first few, the one listing is walked in order
            # (listing again after each cancelled head made a queue of cancelled jobs cost O(n^2)).
            for entry_name in _in_order(queued, wanted):
                if wanted <= 0:
                    break
                if (name := self._claim(entry_name)) is not None:
                    started.append(name)
                    wanted -= 1
        # Started outside the lock: a claimed job holds its slot (START_GRACE_S), so other pumps count it, and
        # wrappers finishing at the same time start their successors in parallel instead of one by one.
        spawn_all([self.job_dir(name) for name in started[keep:]])
        return started

    def _count_running(self, sweep: bool) -> int:
        """The slots in use; with ``sweep``, slots of jobs that ended or lost their wrapper are released first."""
        if not sweep:
            return len(os.listdir(self.active))
        running = 0
        for entry in list(self.active.iterdir()):
            if self.holds_slot(entry.read_text()):
                running += 1
            else:
                entry.unlink(missing_ok=True)
        (self.root / "swept").touch()
        return running

    def _count_idle(self, sweep: bool) -> int:
        """Wrappers waiting for a job; with ``sweep``, marks of wrappers that died waiting are dropped."""
        names = os.listdir(self.idle)
        if not sweep:
            return len(names)
        alive = 0
        for name in names:
            info = read_json(self.idle / name)
            if info is not None and wrapper_alive(info):
                alive += 1
            else:
                (self.idle / name).unlink(missing_ok=True)
        return alive

    def linger(self, max_running: int, last_job: Path) -> str | None:
        """Wait up to ``LINGER_S`` for a queued job this wrapper may run; its name (claimed), or ``None``.

        ``last_job`` is the folder of the job this wrapper ran last: its ``pid.json`` is the idle mark's content.
        """
        mark = self.idle / str(os.getpid())
        try:
            link(last_job / "pid.json", mark)
        except FileNotFoundError:  # the job never started (no spec)
            write_json(mark, {"pid": os.getpid(), "start_ticks": start_ticks(os.getpid())})
        deadline = time.monotonic() + LINGER_S
        watch = QueueWatch(self.queue)  # before the first look: no entry lands unseen
        try:
            while (left := deadline - time.monotonic()) > 0:
                watch.wait(left)
                if os.listdir(self.queue) and (name := self._claim_one(max_running)) is not None:
                    return name
        finally:
            watch.close()
            mark.unlink(missing_ok=True)
        return self._claim_one(max_running)  # queued for us while we were leaving: no pump started a wrapper

    def _claim_one(self, max_running: int) -> str | None:
        with self.locked():
            if len(os.listdir(self.active)) >= max_running:
                return None
            for entry_name in sorted(os.listdir(self.queue)):
                if (name := self._claim(entry_name)) is not None:
                    return name
        return None

    def _sweep_due(self) -> bool:
        try:
            return time.time() - (self.root / "swept").stat().st_mtime > SWEEP_GAP_S
        except FileNotFoundError:
            return True

    def _claim(self, entry_name: str) -> str | None:
        """Take one entry off the queue; the job's name if it is to be started (not cancelled, not gone)."""
        entry = self.queue / entry_name
        try:
            name = entry.read_text()
        except FileNotFoundError:
            return None
        entry.unlink(missing_ok=True)
        job = self.job_dir(name)
        if (job / "cancelled").exists() or not (job / "spec.json").exists():
            return None
        write_json(job / "claimed", {"t": time.time()})
        link_or_write(job / "queued", self.active / folder_name(name), name)
        return name

    def enqueue(self, job: Path, name: str, entry_name: str) -> None:
        """Put the job of folder ``job`` (its ``spec.json`` written) at the end of the queue; under the lock."""
        (job / "queued").write_text(name)
        link(job / "queued", self.queue / entry_name)


def link(source: Path, path: Path) -> None:
    """Make ``path`` a hard link to ``source``, in place of what ``path`` was (``FileNotFoundError`` if
    ``source`` is gone)."""
    try:
        os.link(source, path)
    except FileExistsError:  # left by a job or a wrapper that died
        path.unlink()
        os.link(source, path)


def link_or_write(source: Path, path: Path, name: str) -> None:
    """``path`` as a hard link to ``source`` (which holds ``name``), or a file of its own if ``source`` is gone
    (a job queued before jobs kept a ``queued`` file)."""
    try:
        link(source, path)
    except FileNotFoundError:
        path.write_text(name)


class QueueWatch:
    """Wakes a waiting wrapper when an entry lands in the queue folder.

    Through inotify (libc, by ``ctypes``): 32 wrappers looking every ``IDLE_POLL_S`` kept 11 % of a core busy
    here while they waited, and a job waited up to that long for one of them. Where inotify is missing or out of
    instances, the wait is a sleep of ``IDLE_POLL_S`` as before.
    """

    def __init__(self, folder: Path) -> None:
        self.fd = -1
        with contextlib.suppress(OSError, AttributeError):
            libc = _libc()
            fd = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
            if fd >= 0 and libc.inotify_add_watch(fd, os.fsencode(folder), _IN_CREATE | _IN_MOVED_TO) < 0:
                os.close(fd)
                fd = -1
            self.fd = fd

    def wait(self, timeout_s: float) -> None:
        """Return when an entry was added, or after at most ``timeout_s``."""
        if self.fd < 0:
            time.sleep(min(timeout_s, IDLE_POLL_S))
            return
        ready, _, _ = select.select([self.fd], [], [], min(timeout_s, WATCHED_LOOK_S))
        if ready:
            with contextlib.suppress(BlockingIOError):
                os.read(self.fd, 65536)  # the events themselves do not matter: the queue is listed next

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


@functools.cache
def _libc() -> ctypes.CDLL:
    """The C library, loaded once per process (a wrapper waits once per job)."""
    return ctypes.CDLL(None, use_errno=True)


def _in_order(queued: list[str], first: int) -> Iterator[str]:
    """Queue entries oldest first: the ``first`` by a partial sort, the rest (only if asked for) by a full one."""
    heads = heapq.nsmallest(first, queued)
    yield from heads
    if len(heads) < len(queued):
        yield from sorted(queued)[len(heads) :]


def spawn_all(jobs: list[Path]) -> None:
    """Start a detached wrapper for each job folder.

    One launcher forks a wrapper per job and exits at once, so each wrapper is nobody's child here (no zombies)
    and lives in the launcher's own session, beyond the life of the process that started it. One interpreter
    start for them all: a start each (~30 ms of CPU) made the first submission to an idle site cost a second
    of CPU on these cores before its jobs ran.
    """
    launchers = [
        subprocess.Popen(
            [sys.executable, "-I", str(RUNNER), "run", *map(str, jobs[at : at + JOBS_PER_LAUNCHER])],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            close_fds=True,
        )
        for at in range(0, len(jobs), JOBS_PER_LAUNCHER)
    ]
    for launcher in launchers:
        launcher.wait()
