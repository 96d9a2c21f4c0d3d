"""The split of the job space between replicas."""

from __future__ import annotations

from collections import Counter

import pytest
from prodflow_monitor.sharding import Shard, label_hash, replica_of


def test_hash_is_stable_and_known() -> None:
    # FNV-1a 32-bit reference values: the split must not change between releases or processes.
    assert label_hash("") == 0x811C9DC5
    assert label_hash("a") == 0xE40C292C
    assert label_hash("foobar") == 0xBF9CF968


def test_every_label_has_exactly_one_owner_and_the_split_is_even() -> None:
    labels = [f"2026-11_Label_{i}" for i in range(3000)]
    shards = [Shard(i, 3) for i in range(3)]
    for label in labels:
        assert sum(shard.owns_label(label) for shard in shards) == 1
    spread = Counter(replica_of(label, 3) for label in labels)
    assert min(spread.values()) > 900


def test_jobs_follow_their_label_and_foreign_ids_are_not_owned() -> None:
    shard = Shard(replica_of("LabelX", 4), 4)
    assert shard.owns_job("job:LabelX:Mod:1:0:p1") and shard.owns_job("job:LabelX:Other:9:2:p3")
    assert not shard.owns_job("_design/jobs") and not shard.owns_job("evt-123")
    with pytest.raises(ValueError):
        Shard(4, 4)
