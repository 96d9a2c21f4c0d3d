"""``prodflow provenance``: the chain drawn as a tree, the query an argument makes, and a local file's check."""

from __future__ import annotations

import zlib
from pathlib import Path

import pytest
from cli_support import Cli
from prodflow_cli.commands.provenance import question
from prodflow_cli.errors import CliError
from prodflow_cli.exits import ExitCode
from prodflow_cli.provenance_check import Comparison, LocalFile
from prodflow_cli.provenance_tree import render_provenance
from prodflow_core.couch.server import free_port
from prodflow_core.provenance.schema import (
    Attempt,
    CampaignProvenance,
    CycleFileNode,
    CycleFileProvenance,
    CycleProvenance,
    FileRecord,
    JobOutputProvenance,
    JobProvenance,
    Provenance,
    RequestProvenance,
    RequestStateChange,
    SnakemakeStep,
    SoftwarePin,
)

SE_URL = "root://se.example.org//snoplus/mc/2026-11_tl208_v1/Tl208_r300000_c3_p1.root"


def _job_output(*, request: bool = True) -> Provenance:
    """A SNO+ output written by the second attempt of its job (the first was killed)."""
    job = JobProvenance(
        id="Tl208_300000_3_1",
        database="data-production",
        experiment="snoplus",
        label="2026-11_tl208_v1",
        module="Tl208",
        run=300000,
        chunk=3,
        pass_number=1,
        seed=424242,
        events=1000,
        status="completed",
        attempts=[
            Attempt(
                attempt=1,
                site="local",
                backend="slurm",
                backend_id="81234",
                submitted_at="2026-11-25T10:00:00Z",
                started_at="2026-11-25T10:01:00Z",
                finished_at="2026-11-25T10:31:00Z",
                exit_code=137,
                outcome="failed",
                reason="killed (out of memory)",
            ),
            Attempt(
                attempt=2,
                site="local",
                backend="slurm",
                backend_id="81301",
                submitted_at="2026-11-25T10:32:00Z",
                started_at="2026-11-25T10:33:00Z",
                finished_at="2026-11-25T11:02:00Z",
                exit_code=0,
                outcome="completed",
            ),
        ],
        command="rat -N 1000 -s 424242 -o Tl208_r300000_c3_p1.root Tl208.mac",
        software={"rat_v": "7.0.15", "ratdb_tag": "snoplus-2026-11", "parameters": {"geometry": "partial_fill"}},
    )
    campaign = CampaignProvenance(
        id="camp-7f3a",
        site="local",
        pass_number=1,
        kind="initial",
        created_by="manon",
        created_at="2026-11-25T09:58:00Z",
    )
    req = RequestProvenance(
        id="req-0042",
        title="Tl208 in the partial fill",
        requester="rita",
        state="approved",
        approved_by="manon",
        approved_at="2026-11-25T09:50:00Z",
        jobs_json_sha256="5" * 64,
        history=[
            RequestStateChange(state="submitted", at="2026-11-24T16:00:00Z", by="rita"),
            RequestStateChange(state="approved", at="2026-11-25T09:50:00Z", by="manon", note="for the\nwinter fit"),
        ],
    )
    return Provenance(
        kind="job-output",
        experiment="snoplus",
        file=FileRecord(
            name="Tl208_r300000_c3_p1.root",
            url=SE_URL,
            size=52_428_800,
            adler32="0a1b2c3d",
            recorded_at="2026-11-25T11:02:05Z",
        ),
        job_output=JobOutputProvenance(
            attempt=2, job=job, campaign=campaign if request else None, request=req if request else None
        ),
    )


def _node(path: str, size: int, adler: str, rule: str | None = None, inputs: list[str] | None = None) -> CycleFileNode:
    step = None if rule is None else SnakemakeStep(run_id="run-0003", rule=rule, jobid=len(path), wildcards={})
    return CycleFileNode(
        file=FileRecord(name=path.rsplit("/", 1)[-1], path=path, size=size, adler32=adler),
        made_by=step,
        inputs=inputs or [],
    )


HIT = "generated/tier/hit/phy/p03/r000/l200-p03-r000-phy-20230101T000000Z-tier_hit.lh5"
DSP = "generated/tier/dsp/phy/p03/r000/l200-p03-r000-phy-20230101T000000Z-tier_dsp.lh5"
RAW = "generated/tier/raw/phy/p03/r000/l200-p03-r000-phy-20230101T000000Z-tier_raw.lh5"
PARS = "generated/par/dsp/cal/p03/r000/l200-p03-r000-cal-20230101T000000Z-par_dsp.yaml"


def _cycle_file() -> Provenance:
    """A LEGEND hit file: hit ← (dsp, pars); dsp ← (raw, pars); the parameters are an input of both steps."""
    files = [
        _node(HIT, 4096, "000a0001", "build_hit", [DSP, PARS]),
        _node(DSP, 8192, "000b0002", "build_dsp", [RAW, PARS]),
        _node(PARS, 512, "000c0003"),
        _node(RAW, 65536, "000d0004"),
    ]
    return Provenance(
        kind="cycle-file",
        experiment="legend",
        file=files[0].file,
        cycle_file=CycleFileProvenance(
            cycle=CycleProvenance(
                name="ref-v2",
                experiment="legend",
                config_sha256="c" * 64,
                pins=[
                    SoftwarePin(
                        name="legend-dataflow",
                        kind="git",
                        commit="1a2b3c4d",
                        source="https://github.com/legend-exp/legend-dataflow",
                    ),
                    SoftwarePin(name="pygama", kind="package", version="2.0.3", source="pygama==2.0.3"),
                ],
            ),
            files=files,
        ),
    )


def test_a_job_output_reads_from_the_file_down_to_the_request() -> None:
    text = render_provenance(_job_output())
    lines = text.splitlines()
    assert lines[0] == (f"file {SE_URL} · size 52428800 · adler32 0a1b2c3d · recorded 2026-11-25T11:02:05Z")
    order = [
        "└── job Tl208_300000_3_1 · label 2026-11_tl208_v1 · module Tl208 · run 300000 · chunk 3 · pass 1 · "
        "seed 424242 · events 1000 · status completed",
        "    ├── attempt 1 · failed · site local · backend slurm · 81234 · exit 137 · submitted 2026-11-25T10:00:00Z"
        " · started 2026-11-25T10:01:00Z · finished 2026-11-25T10:31:00Z · reason: killed (out of memory)",
        "    ├── attempt 2 · completed · wrote this file · site local · backend slurm · 81301 · exit 0 · "
        "submitted 2026-11-25T10:32:00Z · started 2026-11-25T10:33:00Z · finished 2026-11-25T11:02:00Z",
        "    ├── command: rat -N 1000 -s 424242 -o Tl208_r300000_c3_p1.root Tl208.mac",
        "    ├── software",
        "    │   ├── rat_v: 7.0.15",
        "    │   ├── ratdb_tag: snoplus-2026-11",
        '    │   └── parameters: {"geometry":"partial_fill"}',
        "    └── campaign camp-7f3a · site local · pass 1 · kind initial · created by manon at 2026-11-25T09:58:00Z",
        '        └── request req-0042 "Tl208 in the partial fill" · requester rita · state approved · '
        "approved by manon at 2026-11-25T09:50:00Z",
        f"            ├── jobs.json sha256 {'5' * 64}",
        "            └── history",
        "                ├── 2026-11-24T16:00:00Z submitted by rita",
        "                └── 2026-11-25T09:50:00Z approved by manon · why: for the winter fit",
    ]
    assert lines[1:] == order


def test_a_job_without_campaign_or_request_says_so() -> None:
    text = render_provenance(_job_output(request=False))
    assert "campaign: none (a job filed without a campaign)" in text
    assert "request: none (a jobs.json uploaded without a request)" in text


def test_a_cycle_file_shows_its_cycle_and_its_inputs_down_to_raw_with_a_shared_input_once() -> None:
    lines = render_provenance(_cycle_file()).splitlines()
    assert lines == [
        f"file {HIT} · size 4096 · adler32 000a0001",
        f"├── cycle ref-v2 · experiment legend · config.json sha256 {'c' * 64}",
        "│   └── software pins",
        "│       ├── legend-dataflow (git) · commit 1a2b3c4d · https://github.com/legend-exp/legend-dataflow",
        "│       └── pygama (package) · 2.0.3 · pygama==2.0.3",
        "└── files (each made from the files under it)",
        f"    └── {HIT} · rule build_hit · run run-0003 · jobid {len(HIT)} · size 4096 · adler32 000a0001",
        f"        ├── {DSP} · rule build_dsp · run run-0003 · jobid {len(DSP)} · size 8192 · adler32 000b0002",
        f"        │   ├── {RAW} · no recorded step made it · size 65536 · adler32 000d0004",
        f"        │   └── {PARS} · no recorded step made it · size 512 · adler32 000c0003",
        f"        └── {PARS} · shown above",
    ]


def test_an_input_missing_from_the_answer_is_named_not_dropped() -> None:
    record = _cycle_file()
    assert record.cycle_file is not None
    record.cycle_file.files = [node for node in record.cycle_file.files if node.file.path != RAW]
    assert f"{RAW} · no record of this file" in render_provenance(record)


def test_server_text_cannot_break_the_tree_apart() -> None:
    record = _job_output()
    assert record.job_output is not None
    record.job_output.job.command = "rat \\\n  -N 1000\x1b[31m"
    lines = render_provenance(record).splitlines()
    assert "    ├── command: rat \\   -N 1000 [31m" in lines
    assert all("\x1b" not in line for line in lines)


# --- the query an argument makes, and a local file against its record --------------------------------------------


def _write(path: Path, content: bytes) -> Path:
    path.write_bytes(content)
    return path


def test_a_local_file_is_asked_by_name_and_adler32(tmp_path: Path) -> None:
    content = b"SNO+ MC output\n" * 1000
    path = _write(tmp_path / "Tl208_r300000_c3_p1.root", content)
    asked = question(str(path))
    expected = f"{zlib.adler32(content) & 0xFFFFFFFF:08x}"
    assert asked.params == {"name": "Tl208_r300000_c3_p1.root", "adler32": expected}
    assert asked.local == LocalFile(path=path, size=len(content), adler32=expected)


def test_urls_paths_cycles_and_jobs_make_their_own_queries(tmp_path: Path) -> None:
    assert question(SE_URL).params == {"url": SE_URL}
    assert question("file:///data/se/x.root").params == {"url": "file:///data/se/x.root"}
    assert question(HIT, cycle="ref-v2").params == {"path": HIT, "cycle": "ref-v2"}
    assert question(None, job="Tl208_300000_3_1").params == {"job": "Tl208_300000_3_1"}
    guessed = question(str(tmp_path / "no-such-file.lh5"))
    assert guessed.params == {"path": str(tmp_path / "no-such-file.lh5")} and guessed.guessed_path


@pytest.mark.parametrize(
    ("argument", "job", "why"),
    [(None, None, "give FILE_OR_URL"), ("x.root", "job-1", "not both"), (".", None, "is a folder")],
)
def test_bad_combinations_are_usage_errors(argument: str | None, job: str | None, why: str) -> None:
    with pytest.raises(CliError, match=why) as caught:
        question(argument, job=job)
    assert caught.value.exit_code == ExitCode.USAGE


def test_the_recorded_file_matches_then_a_changed_copy_does_not(tmp_path: Path) -> None:
    content = b"\x00\x01raw waveform bytes" * 4096
    local = LocalFile.read(_write(tmp_path / "out.root", content))
    record = FileRecord(name="out.root", url=SE_URL, size=len(content), adler32=local.adler32.upper())
    same = Comparison(local, record)
    assert same.matches
    assert same.lines()[0] == f"local file {tmp_path / 'out.root'} matches the record"

    changed = LocalFile.read(_write(tmp_path / "out.root", content[:-1] + b"X"))
    differs = Comparison(changed, record)
    assert changed.size == local.size and changed.adler32 != local.adler32
    assert not differs.matches and differs.size_matches and differs.adler32_matches is False
    assert differs.lines() == [
        f"local file {tmp_path / 'out.root'} does NOT match the record",
        f"  size: {len(content)} here, {len(content)} recorded: same",
        f"  adler32: {changed.adler32} here, {local.adler32.upper()} recorded: DIFFERENT",
    ]

    truncated = LocalFile.read(_write(tmp_path / "out.root", content[:100]))
    assert Comparison(truncated, record).size_matches is False


def test_a_record_without_checksum_cannot_confirm_a_match(tmp_path: Path) -> None:
    local = LocalFile.read(_write(tmp_path / "raw.lh5", b"abc"))
    comparison = Comparison(local, FileRecord(name="raw.lh5", path="raw/raw.lh5", size=3))
    assert comparison.adler32_matches is None and not comparison.matches
    assert comparison.lines()[2] == f"  adler32: {local.adler32} here, not recorded: cannot be checked"


def test_the_command_is_registered_and_reports_usage_and_network_errors_by_exit_code(tmp_path: Path) -> None:
    cli = Cli(url=f"http://127.0.0.1:{free_port()}", config=tmp_path / "config.json")  # nothing listens there
    assert "provenance" in cli("--help").stdout
    usage = cli("provenance", "--job", "j-1", "x.root")
    assert usage.code == ExitCode.USAGE and "not both" in usage.stderr
    unreachable = cli("provenance", str(_write(tmp_path / "out.root", b"abc")))
    assert unreachable.code == ExitCode.UNREACHABLE and "cannot reach the gateway" in unreachable.stderr
