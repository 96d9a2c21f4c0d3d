"""``_bulk_docs`` answers matched to the documents sent: PouchDB Server on disk answers out of order."""

from __future__ import annotations

import pytest
from prodflow_core.couch import CouchError
from prodflow_core.couch.database import rows_by_doc


def test_rows_are_matched_by_id_whatever_the_order_of_the_answer() -> None:
    # The order PouchDB Server (leveldb) answered a batch of 30 with conflicts: two neighbours swapped.
    docs = [{"_id": "d007", "_rev": "2-a"}, {"_id": "d004", "_rev": "1-b"}, {"_id": "d009", "_rev": "1-0"}]
    answer = [
        {"id": "d004", "ok": True, "rev": "2-new4"},
        {"id": "d007", "ok": True, "rev": "3-new7"},
        {"id": "d009", "error": "conflict"},
    ]
    assert [row["id"] for row in rows_by_doc(docs, answer)] == ["d007", "d004", "d009"]


def test_documents_of_one_id_take_its_rows_in_order_and_unnamed_ones_the_rest() -> None:
    docs = [{"_id": "a"}, {"v": 1}, {"_id": "a"}, {"v": 2}]
    answer = [{"id": "a", "rev": "1-x"}, {"id": "generated-1"}, {"id": "a", "error": "conflict"}, {"id": "generated-2"}]
    assert rows_by_doc(docs, answer) == [answer[0], answer[1], answer[2], answer[3]]


def test_an_answer_short_of_rows_is_an_error_not_a_silent_shift() -> None:
    with pytest.raises(CouchError):
        rows_by_doc([{"_id": "a"}, {"_id": "b"}], [{"id": "a", "rev": "1-x"}])
