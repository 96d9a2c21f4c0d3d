"""Choosing the ledger range of a job listing, cursors, and where a job's outputs are found (pure functions)."""

from __future__ import annotations

from pathlib import Path

from prodflow_core.backends import LocalBackend
from prodflow_core.backends.local_folder import write_json
from prodflow_monitor.listing import (
    JobFilter,
    experiment_range,
    label_range,
    ranges_for,
)
from prodflow_monitor.loop import destination_of, output_folder
from prodflow_monitor.sites import Site, parse_sites, policy_for


def test_each_listing_reads_one_ledger_index_range() -> None:
    by_status = label_range(JobFilter(label="L", status="running"), "snoplus")
    assert by_status.columns == ("experiment", "label", "status", "doc_id")
    by_run = label_range(JobFilter(label="L", module="M", run=7, pass_number=2), "snoplus")
    assert by_run.fixed == (("experiment", "snoplus"), ("label", "L"), ("module", "M"))
    assert by_run.id_prefix == "job:L:M:7:"
    assert label_range(JobFilter(label="L"), "legend").columns == ("experiment", "label", "module", "doc_id")
    assert experiment_range(JobFilter(site="s"), "snoplus").columns == ("experiment", "site", "status", "doc_id")
    by_site = experiment_range(JobFilter(site="s", status="failed", module="M"), "legend")
    assert by_site.fixed == (("experiment", "legend"), ("site", "s"), ("status", "failed"))
    assert by_site.also == (("module", "M"),)
    assert experiment_range(JobFilter(), "snoplus").columns == ("experiment", "status", "doc_id")


def test_listings_not_by_label_read_one_key_range_per_experiment_of_the_caller() -> None:
    ranges = ranges_for(JobFilter(status="running"), ["snoplus", "legend"])
    assert [r.fixed for r in ranges] == [
        (("experiment", "legend"), ("status", "running")),
        (("experiment", "snoplus"), ("status", "running")),
    ]
    by_label = ranges_for(JobFilter(label="L", status="running"), ["snoplus"])
    assert [r.fixed for r in by_label] == [(("experiment", "snoplus"), ("label", "L"), ("status", "running"))]
    assert ranges_for(JobFilter(label="L"), []) == []  # a label the caller may not read: nothing to walk
    assert ranges_for(JobFilter(site="s"), []) == []
    assert JobFilter(label="L", pass_number=2).matches({"type": "job", "label": "L", "pass": 2})
    assert not JobFilter(label="L", pass_number=2).matches({"type": "job", "label": "L", "pass": 1})


def test_a_cursor_key_belongs_only_to_the_range_that_gave_it() -> None:
    legend = experiment_range(JobFilter(status="running"), "legend")
    assert legend.holds(["legend", "running", "job:L:M:1:0:p1"])
    assert not legend.holds(["snoplus", "running", "job:L:M:1:0:p1"])  # another experiment's keys
    assert not legend.holds(["legend", "running"]) and not legend.holds("job:L:M:1:0:p1")
    assert not legend.holds(["legend", "running", 7])


def test_output_folder_order_doc_then_site_root_then_local_spec(tmp_path: Path) -> None:
    doc = {"_id": "job:L:M:5:0:p1", "backend": {"name": "local", "id": "job:L:M:5:0:p1:a1"}}
    site = Site(name="s", backend="local", options={"work_dir": str(tmp_path / "w")})
    backend = LocalBackend(tmp_path / "w")
    assert output_folder(doc, site, backend) is None
    spec = backend.root.job_dir("job:L:M:5:0:p1:a1")
    spec.mkdir(parents=True)
    write_json(spec / "spec.json", {"output_dir": str(tmp_path / "from-spec")})
    assert output_folder(doc, site, backend) == tmp_path / "from-spec"
    rooted = Site(name="s", backend="local", options={"output_root": str(tmp_path / "out")})
    assert output_folder(doc, rooted, backend) == tmp_path / "out" / "L" / "M" / "5_0_p1"
    assert output_folder({**doc, "output_dir": "/x/y"}, rooted, backend) == Path("/x/y")
    assert destination_of(doc, "root://se//store/") == "root://se//store/L/M/5_0_p1"


def test_sites_parsing_and_policy_precedence() -> None:
    sites = parse_sites(
        [{"name": "a", "backend": "local", "max_attempts": 5, "retry_exit_codes": [1]}, {"backend": "no name"}]
    )
    assert list(sites) == ["a"] and sites["a"].policy.max_attempts == 5
    assert parse_sites({"items": [{"name": "b", "backend": "slurm"}]})["b"].backend == "slurm"
    assert policy_for({"policy": {"max_attempts": 1}}, sites["a"]).max_attempts == 1
    assert policy_for({"policy": {"max_attempts": "many"}}, sites["a"]).max_attempts == 5
    assert policy_for({}, None).max_attempts == 3
