"""The local backend: real detached processes, a concurrency limit, state in files, restarts."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import time
from pathlib import Path
from typing import Any

import pytest
from prodflow_core.backends import BackendJob, BackendStatus, LocalBackend, make_backend
from prodflow_core.backends.local_folder import read_json

pytestmark = pytest.mark.timeout(60)


def _job(tmp_path: Path, name: str, command: str, walltime_s: int | None = None) -> BackendJob:
    return BackendJob(name=name, command=command, output_dir=tmp_path / "out" / name, walltime_s=walltime_s)


async def _wait_final(backend: LocalBackend, ids: list[str], timeout_s: float = 30.0) -> dict[str, BackendStatus]:
    deadline = time.monotonic() + timeout_s
    while True:
        states = await backend.status(ids)
        if all(s.state.is_final or s.state == BackendStatus.MISSING for s in states.values()):
            return {k: v.state for k, v in states.items()}
        assert time.monotonic() < deadline, states
        await asyncio.sleep(0.1)


async def test_jobs_run_with_exit_codes_logs_and_outputs(tmp_path: Path) -> None:
    backend = make_backend("local", {"work_dir": str(tmp_path / "work"), "max_running": 2})
    assert isinstance(backend, LocalBackend)
    jobs = [
        _job(tmp_path, "ok", "echo hello; echo data > result.txt"),
        _job(tmp_path, "bad", "echo oops >&2; exit 3"),
    ]
    ids = await backend.submit(jobs)
    assert ids == ["ok", "bad"]
    assert await _wait_final(backend, ids) == {"ok": BackendStatus.COMPLETED, "bad": BackendStatus.FAILED}
    states = await backend.status(ids)
    assert states["bad"].exit_code == 3 and states["ok"].exit_code == 0
    assert states["ok"].started_at and states["ok"].finished_at
    assert (tmp_path / "out" / "ok" / "result.txt").read_text() == "data\n"
    _out, err = backend.log_paths("bad")
    assert err.read_text() == "oops\n" and backend.log_paths("ok")[0].read_text() == "hello\n"


async def test_concurrency_limit_holds_and_queue_drains_without_the_caller(tmp_path: Path) -> None:
    backend = LocalBackend(tmp_path / "work", max_running=2)
    marker = tmp_path / "running"
    marker.mkdir()
    # Each job records itself as running, checks how many run at once, then leaves.
    command = (
        f"touch {marker}/$PRODFLOW_JOB_NAME; ls {marker} | wc -l > peak; sleep 0.4; rm {marker}/$PRODFLOW_JOB_NAME"
    )
    ids = await backend.submit([_job(tmp_path, f"j{i}", command) for i in range(6)])
    first = await backend.status(ids)
    assert sum(s.state == BackendStatus.RUNNING for s in first.values()) <= 2
    # Nobody calls submit or status from here on: finishing wrappers start the queued jobs.
    await asyncio.sleep(3.0)
    final = await _wait_final(backend, ids)
    assert set(final.values()) == {BackendStatus.COMPLETED}
    peaks = [int((tmp_path / "out" / f"j{i}" / "peak").read_text()) for i in range(6)]
    assert max(peaks) <= 2


async def test_one_submission_starts_its_wrappers_side_by_side_from_one_launcher(tmp_path: Path) -> None:
    backend = LocalBackend(tmp_path / "work", max_running=4)
    marker = tmp_path / "here"
    marker.mkdir()
    # Each job waits until all four are running: wrappers started one after the other would never all meet.
    command = (
        f"touch {marker}/$PRODFLOW_JOB_NAME; i=0; while [ $(ls {marker} | wc -l) -lt 4 ] && [ $i -lt 100 ]; "
        "do sleep 0.1; i=$((i+1)); done; ls " + str(marker) + " | wc -l > met; cut -d' ' -f6 /proc/$$/stat > sid"
    )
    ids = await backend.submit([_job(tmp_path, f"j{i}", command) for i in range(4)])
    assert set((await _wait_final(backend, ids)).values()) == {BackendStatus.COMPLETED}
    outputs = [tmp_path / "out" / f"j{i}" for i in range(4)]
    assert [int((out / "met").read_text()) for out in outputs] == [4, 4, 4, 4]
    wrappers = {read_json(backend.root.job_dir(f"j{i}") / "pid.json")["pid"] for i in range(4)}  # type: ignore[index]
    assert len(wrappers) == 4
    # one launcher forked them all: they share the session it made (an interpreter start each made one each)
    assert len({(out / "sid").read_text() for out in outputs}) == 1


async def test_resubmitting_a_name_does_not_run_it_twice(tmp_path: Path) -> None:
    backend = LocalBackend(tmp_path / "work", max_running=2)
    job = _job(tmp_path, "once", "echo x >> runs.txt")
    await backend.submit([job])
    await _wait_final(backend, ["once"])
    assert await backend.submit([job]) == ["once"]
    await asyncio.sleep(0.5)
    assert (tmp_path / "out" / "once" / "runs.txt").read_text() == "x\n"
    assert await backend.lookup(["once", "never"]) == {"once": "once"}


async def test_cancel_running_and_queued_jobs(tmp_path: Path) -> None:
    backend = LocalBackend(tmp_path / "work", max_running=1)
    ids = await backend.submit([_job(tmp_path, "long", "sleep 30"), _job(tmp_path, "queued", "echo never > x")])
    deadline = time.monotonic() + 10
    while (await backend.status(["long"]))["long"].state != BackendStatus.RUNNING:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
    assert (await backend.status(["queued"]))["queued"].state == BackendStatus.PENDING
    await backend.cancel(ids)
    assert await _wait_final(backend, ids, 15) == {"long": BackendStatus.CANCELLED, "queued": BackendStatus.CANCELLED}
    assert not (tmp_path / "out" / "queued" / "x").exists()
    await backend.cancel(["long", "unknown"])  # already finished or unknown: harmless


async def test_walltime_kills_the_job(tmp_path: Path) -> None:
    backend = LocalBackend(tmp_path / "work", max_running=1)
    await backend.submit([_job(tmp_path, "slow", "sleep 20", walltime_s=1)])
    await _wait_final(backend, ["slow"], 15)
    state = (await backend.status(["slow"]))["slow"]
    assert state.state == BackendStatus.FAILED and state.reason == "walltime exceeded"


async def test_killed_wrapper_is_missing_and_a_resend_runs_it_again(tmp_path: Path) -> None:
    backend = LocalBackend(tmp_path / "work", max_running=1)
    await backend.submit([_job(tmp_path, "victim", "sleep 30")])
    job_dir = tmp_path / "work" / "jobs" / "victim"
    deadline = time.monotonic() + 10
    # Kill the wrapper once its child runs (child.json is written after the spawn), so the child is orphaned.
    while read_json(job_dir / "pid.json") is None or read_json(job_dir / "child.json") is None:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
    pid = json.loads((job_dir / "pid.json").read_text())["pid"]
    os.kill(pid, signal.SIGKILL)  # the wrapper dies without writing result.json (its child runs on, orphaned)
    await asyncio.sleep(0.3)
    lost = (await backend.status(["victim"]))["victim"]
    assert lost.state == BackendStatus.MISSING and "died" in lost.reason
    assert (await backend.status(["nope"]))["nope"].state == BackendStatus.MISSING
    # Its slot is released, and submitting the same name again starts a fresh run.
    await backend.submit([_job(tmp_path, "victim", "echo again > again.txt")])
    assert (await _wait_final(backend, ["victim"]))["victim"] == BackendStatus.COMPLETED
    lost_dirs = list((tmp_path / "work" / "jobs").glob("victim.lost-*"))
    assert len(lost_dirs) == 1
    orphan = json.loads((lost_dirs[0] / "child.json").read_text())["pgid"]
    os.killpg(orphan, signal.SIGKILL)


async def test_a_new_backend_object_sees_jobs_of_an_earlier_one(tmp_path: Path) -> None:
    first = LocalBackend(tmp_path / "work", max_running=1)
    await first.submit([_job(tmp_path, "a", "sleep 0.3"), _job(tmp_path, "b", "true")])
    second = LocalBackend(tmp_path / "work", max_running=1)  # e.g. the monitor, or the submitter restarted
    await second.resume()
    assert set((await _wait_final(second, ["a", "b"])).values()) == {BackendStatus.COMPLETED}


async def test_purge_removes_only_finished_jobs(tmp_path: Path) -> None:
    backend = LocalBackend(tmp_path / "work", max_running=2)
    await backend.submit([_job(tmp_path, "done", "echo out > kept.txt"), _job(tmp_path, "busy", "sleep 30")])
    deadline = time.monotonic() + 10
    while (await backend.status(["done"]))["done"].state != BackendStatus.COMPLETED:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
    backend.purge(["done", "busy"])
    assert (await backend.status(["done"]))["done"].state == BackendStatus.MISSING
    assert (tmp_path / "out" / "done" / "kept.txt").exists()  # outputs stay for the monitor
    assert (await backend.status(["busy"]))["busy"].state in {BackendStatus.RUNNING, BackendStatus.PENDING}
    await backend.cancel(["busy"])
    assert (await _wait_final(backend, ["busy"], 15))["busy"] == BackendStatus.CANCELLED


async def test_change_journal_names_started_ended_and_cancelled_jobs(tmp_path: Path) -> None:
    backend = LocalBackend(tmp_path / "work", max_running=1)
    assert backend.keeps_journal
    start = await backend.changed_since(None)
    assert start.backend_ids == [] and not await backend.journal_moved(start.cursor)
    ids = await backend.submit([_job(tmp_path, "one", "true"), _job(tmp_path, "two x/y", "sleep 30")])
    await _wait_final(backend, ["one"])
    deadline = time.monotonic() + 10
    while "two x/y" not in (await backend.changed_since(start.cursor)).backend_ids:
        assert time.monotonic() < deadline, "the second job's start was not journaled"
        await asyncio.sleep(0.1)
    assert await backend.journal_moved(start.cursor)
    seen = await backend.changed_since(start.cursor)
    assert seen.backend_ids == ids and not seen.more  # each once, in journal order; names quoted and back
    assert (await backend.changed_since(seen.cursor)).backend_ids == []
    await backend.cancel(["two x/y"])
    await _wait_final(backend, ["two x/y"])
    assert (await backend.changed_since(seen.cursor)).backend_ids == ["two x/y"]


def test_journal_reads_whole_lines_across_files_and_prunes_old_ones(tmp_path: Path, monkeypatch: Any) -> None:
    from prodflow_core.backends import journal
    from prodflow_core.backends.local_folder import WorkRoot

    root = WorkRoot(tmp_path)
    root.ensure()
    (root.journal / "2000010100").write_text("old\n")
    (root.journal / "2999010100").write_text("a\nb\npartial")
    read = journal.read_journal(root.journal, ":0")
    assert read.backend_ids == ["old", "a", "b"] and read.cursor == "2999010100:4"
    with (root.journal / "2999010100").open("a") as handle:
        handle.write("-line\n")
    assert journal.read_journal(root.journal, read.cursor).backend_ids == ["partial-line"]
    monkeypatch.setattr(journal, "MAX_READ_BYTES", 2)
    capped = journal.read_journal(root.journal, ":0")
    assert capped.more and capped.backend_ids == [] and capped.cursor == "2000010100:0"  # no whole line yet
    monkeypatch.setattr(journal, "MAX_READ_BYTES", 4)
    assert journal.read_journal(root.journal, capped.cursor).backend_ids == ["old"]
    root.prune_journal()
    assert sorted(os.listdir(root.journal)) == ["2999010100"]


async def test_a_waiting_wrapper_runs_the_next_job_sent_then_leaves(tmp_path: Path) -> None:
    from prodflow_core.backends import local_folder

    backend = LocalBackend(tmp_path / "work", max_running=2)
    await backend.submit([_job(tmp_path, "first", "true")])
    await _wait_final(backend, ["first"])
    await asyncio.sleep(0.2)  # the wrapper waits for a next job (as when a submitter sends as slots free)
    assert len(os.listdir(backend.root.idle)) == 1
    await backend.submit([_job(tmp_path, "second", "true")])
    await _wait_final(backend, ["second"])
    first = read_json(backend.root.job_dir("first") / "pid.json")
    second = read_json(backend.root.job_dir("second") / "pid.json")
    assert first is not None and second is not None and first["pid"] == second["pid"]  # no new interpreter
    await asyncio.sleep(local_folder.LINGER_S + 1.0)
    assert os.listdir(backend.root.idle) == []  # nothing came: it left


@pytest.mark.parametrize("while_", ["running", "waiting"])
async def test_a_wrapper_whose_work_folder_is_deleted_leaves_without_making_it_again(
    tmp_path: Path, while_: str
) -> None:
    from prodflow_core.backends import local_folder

    backend = LocalBackend(tmp_path / "work", max_running=2)
    await backend.submit([_job(tmp_path, "first", "sleep 0.5" if while_ == "running" else "true")])
    pid_file = backend.root.job_dir("first") / "pid.json"
    deadline = time.monotonic() + 10.0
    while (wrapper := read_json(pid_file)) is None:
        assert time.monotonic() < deadline, "the job did not start"
        await asyncio.sleep(0.02)
    if while_ == "waiting":
        await _wait_final(backend, ["first"])
        await asyncio.sleep(0.2)  # the wrapper waits for a next job
    assert local_folder.wrapper_alive(wrapper)
    shutil.rmtree(backend.root.root)
    deadline = time.monotonic() + local_folder.LINGER_S + 10.0
    while local_folder.wrapper_alive(wrapper):
        assert time.monotonic() < deadline, "the wrapper did not leave"
        await asyncio.sleep(0.1)
    assert not backend.root.root.exists()


def test_only_the_backend_makes_a_deleted_work_folder_again(tmp_path: Path) -> None:
    from prodflow_core.backends.local_folder import WorkRoot

    WorkRoot(tmp_path / "work").ensure()
    shutil.rmtree(tmp_path / "work")
    wrapper = WorkRoot(tmp_path / "work", remake=False)
    with pytest.raises(FileNotFoundError), wrapper.locked():
        pass
    with pytest.raises(FileNotFoundError):
        wrapper.note_change("a-job")
    assert not (tmp_path / "work").exists()  # a wrapper finishing after the folder was deleted leaves it deleted
    with WorkRoot(tmp_path / "work").locked():
        assert (tmp_path / "work" / "queue").is_dir()


def test_a_queue_of_cancelled_jobs_is_walked_once(tmp_path: Path) -> None:
    backend = LocalBackend(tmp_path / "work", max_running=1)
    jobs = [_job(tmp_path, f"job{i:05d}", "true") for i in range(3000)]
    backend._enqueue(jobs)
    backend._cancel([job.name for job in jobs[:-1]])
    claimed = backend.root.pump(1, keep=1)  # keep: claimed for the caller, no wrapper started
    assert claimed == ["job02999"]
    assert os.listdir(backend.root.queue) == []  # the cancelled entries were dropped on the way


async def test_a_jobs_way_through_the_backend_frees_no_inode(tmp_path: Path) -> None:
    """Queue, active and idle entries are extra links to files a job keeps, so removing one frees no inode."""
    backend = LocalBackend(tmp_path / "work", max_running=1)
    backend._enqueue([_job(tmp_path, "first", "true")])
    queued = backend.root.job_dir("first") / "queued"
    [entry] = backend.root.queue.iterdir()
    assert entry.stat().st_ino == queued.stat().st_ino and queued.stat().st_nlink == 2
    assert backend.root.pump(1, keep=1) == ["first"]  # claimed for the caller: no wrapper started
    [active] = backend.root.active.iterdir()
    assert active.stat().st_ino == queued.stat().st_ino and queued.stat().st_nlink == 2  # the queue link is gone
    backend.root.pump(1, keep=1, finished="first")
    assert os.listdir(backend.root.active) == [] and queued.read_text() == "first" and queued.stat().st_nlink == 1

    await backend.submit([_job(tmp_path, "second", "true")])
    await _wait_final(backend, ["second"])
    await asyncio.sleep(0.2)  # its wrapper now waits for a next job
    [mark] = backend.root.idle.iterdir()
    assert mark.stat().st_ino == (backend.root.job_dir("second") / "pid.json").stat().st_ino


def test_a_waiting_wrapper_is_woken_by_a_new_queue_entry(tmp_path: Path) -> None:
    """The queue watch sees an entry land (a link, as enqueue makes), and falls back to polling without inotify."""
    import select

    from prodflow_core.backends.local_folder import QueueWatch

    watch = QueueWatch(tmp_path)
    try:
        assert watch.fd >= 0  # Linux: inotify
        assert select.select([watch.fd], [], [], 0)[0] == []
        (tmp_path / "kept").write_text("job")
        os.link(tmp_path / "kept", tmp_path / "entry")
        assert select.select([watch.fd], [], [], 0)[0] == [watch.fd]
        watch.wait(5.0)  # returns at once and takes the events
        assert select.select([watch.fd], [], [], 0)[0] == []
    finally:
        watch.close()
    assert QueueWatch(tmp_path / "missing").fd == -1  # no folder to watch: a plain sleep per look
