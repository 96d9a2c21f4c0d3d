"""Workflow Run RO-Crates built from plain records read back with ``rocrate``."""

from __future__ import annotations

import json
import zipfile
from io import BytesIO
from pathlib import Path

from prodflow_core.provenance.crate import (
    PROCESS_RUN_CRATE,
    WORKFLOW_RUN_CRATE,
    CrateAction,
    CrateAgent,
    CrateFile,
    CrateRecord,
    CrateSoftware,
    CrateWorkflow,
    crate_zip,
)
from rocrate.rocrate import ROCrate  # type: ignore[import-untyped]

SNAKEFILE = b'rule all:\n    input: "a.txt"\n'
RAW = "file:///data/cycle/generated/tier/raw/r1.lh5"
DSP = "file:///data/cycle/generated/tier/dsp/r1.lh5"


def _record() -> CrateRecord:
    return CrateRecord(
        name="run-1 of cycle c1",
        description="a Snakemake run",
        workflow=CrateWorkflow(
            file=CrateFile("workflow/Snakefile", "Snakefile", content=SNAKEFILE),
            software=["#software-pygama", "#software-dataflow"],
            tools=["#rule-build_dsp"],
        ),
        software=[
            CrateSoftware("#software-pygama", "pygama", version="2.6.2"),
            CrateSoftware("#software-dataflow", "dataflow", version="0123abcd", url="file:///repos/dataflow"),
            CrateSoftware("#rule-build_dsp", "build_dsp"),
        ],
        agents=[CrateAgent("#person-alice", "alice")],
        files=[
            CrateFile("config.json", "config.json", content=b"{}\n", encoding_format="application/json"),
            CrateFile(RAW, "r1.lh5", size=10, adler32="0000000a", path="generated/tier/raw/r1.lh5"),
            CrateFile(DSP, "r1.lh5", size=2_000_000_000, adler32="deadbeef", path="generated/tier/dsp/r1.lh5"),
        ],
        actions=[
            CrateAction(
                "#run-1",
                "Snakemake run run-1",
                instrument="workflow/Snakefile",
                agent="#person-alice",
                started_at="2026-01-01T00:00:00+00:00",
                ended_at="2026-01-01T00:01:00+00:00",
                inputs=["config.json", RAW],
                outputs=[DSP],
                parameters={"targets": "all", "cores": "2"},
            ),
            CrateAction("#run-1-job-3", "build_dsp job 3", instrument="#rule-build_dsp", inputs=[RAW], outputs=[DSP]),
        ],
    )


def test_workflow_run_crate_reads_back(tmp_path: Path) -> None:
    data = crate_zip(_record())
    zip_path = tmp_path / "crate.zip"
    zip_path.write_bytes(data)
    names = set(zipfile.ZipFile(BytesIO(data)).namelist())
    assert names == {"ro-crate-metadata.json", "workflow/Snakefile", "config.json"}  # data files are referenced

    crate = ROCrate(zip_path)
    profiles = {p["@id"] if isinstance(p, dict) else p.id for p in crate.root_dataset["conformsTo"]}
    assert {PROCESS_RUN_CRATE, WORKFLOW_RUN_CRATE} <= profiles
    workflow = crate.mainEntity
    assert workflow.id == "workflow/Snakefile"
    assert "ComputationalWorkflow" in workflow.type
    assert workflow["programmingLanguage"].id.endswith("#snakemake")
    assert {s["name"] for s in workflow["softwareRequirements"]} == {"pygama", "dataflow"}

    actions = {a.id: a for a in crate.get_by_type("CreateAction")}
    assert set(actions) == {"#run-1", "#run-1-job-3"}
    run = actions["#run-1"]
    assert run["instrument"].id == "workflow/Snakefile"
    assert run["agent"]["name"] == "alice"
    assert run["actionStatus"] == "http://schema.org/CompletedActionStatus"
    assert [r.id for r in run["result"]] == [DSP]
    objects = {o.id: o for o in run["object"]}
    assert {"config.json", RAW} <= set(objects)
    assert {o["name"]: o["value"] for o in objects.values() if o.type == "PropertyValue"} == {
        "targets": "all",
        "cores": "2",
    }
    assert actions["#run-1-job-3"]["instrument"]["name"] == "build_dsp"
    assert {m.id for m in crate.root_dataset["mentions"]} == set(actions)

    dsp = crate.get(DSP)
    assert dsp.type == "File"
    assert (dsp["contentSize"], dsp["adler32"], dsp["alternateName"]) == (
        "2000000000",
        "deadbeef",
        "generated/tier/dsp/r1.lh5",
    )
    metadata = json.loads(zipfile.ZipFile(BytesIO(data)).read("ro-crate-metadata.json"))
    assert {"adler32": "urn:prodflow:terms:adler32"} in metadata["@context"]


def test_process_run_crate_without_a_workflow() -> None:
    out = "root://se.example//snoplus/out_1.root"
    record = CrateRecord(
        name="label L",
        description="SNO+ production",
        software=[CrateSoftware("#rat-7.0.15", "rat", version="7.0.15")],
        agents=[CrateAgent("#person-bob", "bob")],
        files=[CrateFile(out, "out_1.root", size=5, adler32="00000005")],
        actions=[CrateAction("#job-1", "job 1", instrument="#rat-7.0.15", agent="#person-bob", outputs=[out])],
    )
    metadata = json.loads(zipfile.ZipFile(BytesIO(crate_zip(record))).read("ro-crate-metadata.json"))
    graph = {e["@id"]: e for e in metadata["@graph"]}
    assert graph["./"]["conformsTo"] == [{"@id": PROCESS_RUN_CRATE}]
    assert "mainEntity" not in graph["./"]
    assert graph["#job-1"]["instrument"] == {"@id": "#rat-7.0.15"}
    assert graph["#job-1"]["result"] == [{"@id": out}]
    assert graph[out]["adler32"] == "00000005"
    assert {"@id": out} in graph["./"]["hasPart"]
