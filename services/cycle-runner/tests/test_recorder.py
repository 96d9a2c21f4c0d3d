"""File records from the logger plugin's JSON lines, without Snakemake: chain, replay, newest maker, sources."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from prodflow_core.checksums import file_adler32
from prodflow_cycle_runner import lineage
from prodflow_cycle_runner.models import CycleRow, FileRow, StepRow
from prodflow_cycle_runner.recorder import FileRecorder, StepTracker, cycle_path
from prodflow_cycle_runner.runner import utcnow
from queue_support import Sessions
from sqlmodel import select


def _job(cycle: Path, jobid: int, rule: str, inputs: list[str], outputs: list[str], t: float) -> list[dict[str, Any]]:
    for out in outputs:
        plain = out.removesuffix(" (pipe)")
        path = Path(plain) if plain.startswith("/") else cycle / plain
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"{rule} {jobid} {t}\n")
    info = {"event": "job_info", "t": t, "jobid": jobid, "rule_name": rule, "wildcards": {"run": "r1"}}
    return [
        info | {"input": inputs, "output": outputs},
        {"event": "job_started", "t": t + 0.1, "jobs": [jobid]},
        {"event": "job_finished", "t": t + 1, "jobid": jobid},
    ]


def _events(cycle: Path, t: float = 1000.0) -> list[dict[str, Any]]:
    config = str(cycle / "inputs/sim.json")
    raw, dsp = str(cycle / "gen/raw/r1.lh5"), str(cycle / "gen/dsp/r1.lh5")
    return [
        *_job(cycle, 1, "build_raw", [config], [raw], t),
        *_job(cycle, 2, "build_dsp", [raw, str(cycle / "inputs/dsp.json")], [dsp + " (pipe)"], t + 2),
        *_job(cycle, 3, "build_hit", [dsp], ["gen/hit/r1.lh5"], t + 4),
    ]


async def _cycle(sessions: Sessions, folder: Path) -> None:
    (folder / "inputs").mkdir(parents=True)
    (folder / "inputs/sim.json").write_text('{"n": 1}\n')
    (folder / "inputs/dsp.json").write_text('{"p": 2}\n')
    (folder / "config.json").write_text('{"setups": {"l200": {}}}\n')
    async with sessions() as session:
        session.add(
            CycleRow(
                name="c1", experiment="legend", setup="l200", path=str(folder), created_at=utcnow(), created_by="t",
                checkouts={"dataflow": {"url": "file:///d", "ref": "main", "commit": "abc", "path": "workflow"}},
                software={"state": "installed", "packages": {"pygama": "2.6.2"}},
            )
        )  # fmt: skip
        await session.commit()


def test_tracker_pairs_info_and_finish_and_strips_annotations(tmp_path: Path) -> None:
    tracker, steps = StepTracker(), []
    for event in _events(tmp_path):
        step = tracker.feed(event)
        if step is not None:
            steps.append(step)
    assert [(s.jobid, s.rule) for s in steps] == [(1, "build_raw"), (2, "build_dsp"), (3, "build_hit")]
    assert steps[1].outputs == [str(tmp_path / "gen/dsp/r1.lh5")]
    assert steps[0].started_at is not None and steps[0].finished_at is not None
    assert steps[0].started_at < steps[0].finished_at
    assert cycle_path(str(tmp_path / "gen/raw/r1.lh5"), tmp_path) == "gen/raw/r1.lh5"
    assert cycle_path("/elsewhere/x", tmp_path) == "/elsewhere/x"


async def test_records_chain_replay_and_newest_maker(tmp_path: Path, sessions: Sessions) -> None:
    folder = tmp_path / "c1"
    await _cycle(sessions, folder)
    events = _events(folder)
    events_file = tmp_path / "run-1.events.jsonl"
    events_file.write_text("".join(json.dumps(e) + "\n" for e in events))
    recorder = FileRecorder(sessions, "c1", folder)
    # the follower recorded the first job, then the service was killed: the replay adds the other two only
    tracker = StepTracker()
    first = [s for e in events[:3] if (s := tracker.feed(e)) is not None]
    await recorder.record("run-1", first)
    assert await recorder.replay("run-1", events_file) == 2
    assert await recorder.replay("run-1", events_file) == 0

    async with sessions() as session:
        rows = await lineage.chain(session, "c1", "gen/hit/r1.lh5")
        assert [r.path for r in rows] == [
            "gen/hit/r1.lh5", "gen/dsp/r1.lh5", "gen/raw/r1.lh5", "inputs/dsp.json", "inputs/sim.json",
        ]  # fmt: skip
        for row in rows:
            assert (row.size, row.adler32) == file_adler32(folder / row.path)
        assert [r.rule for r in rows] == ["build_hit", "build_dsp", "build_raw", None, None]
        assert rows[1].inputs == ["gen/raw/r1.lh5", "inputs/dsp.json"]
        steps = (await session.exec(select(StepRow))).all()
        assert len(steps) == 3
        cycle = await session.get(CycleRow, "c1")
        assert cycle is not None
        answer = await lineage.provenance(session, cycle, "gen/hit/r1.lh5")
    assert answer is not None and answer.cycle_file is not None
    assert answer.file.path == "gen/hit/r1.lh5"
    pins = {p.name: p for p in answer.cycle_file.cycle.pins}
    assert pins["dataflow"].commit == "abc" and pins["pygama"].version == "2.6.2"
    assert answer.cycle_file.files[0].made_by is not None
    assert answer.cycle_file.files[0].made_by.run_id == "run-1"

    # reprocessing: run-2 makes the dsp file again; an old replay of run-1 does not take it back
    (folder / "inputs/dsp.json").write_text('{"p": 3}\n')
    tracker = StepTracker()
    later = _events(folder, t=5000.0)[3:6]
    await recorder.record("run-2", [s for e in later if (s := tracker.feed(e)) is not None])
    stale = StepTracker()
    for event in events[3:6]:
        step = stale.feed(event)
    assert step is not None
    await recorder.record("run-1", [step])
    async with sessions() as session:
        dsp = await session.get(FileRow, ("c1", "gen/dsp/r1.lh5"))
        config = await session.get(FileRow, ("c1", "inputs/dsp.json"))
    assert dsp is not None and dsp.run_id == "run-2"
    assert (dsp.size, dsp.adler32) == file_adler32(folder / "gen/dsp/r1.lh5")
    assert config is not None and config.adler32 == file_adler32(folder / "inputs/dsp.json")[1]  # changed: refreshed
