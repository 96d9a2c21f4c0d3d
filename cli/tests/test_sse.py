"""The SSE parser: ids persist, comments and retry lines are skipped, multi-line data joins."""

from __future__ import annotations

from prodflow_cli.sse import Message, parse


def test_parse_messages_comments_and_multiline_data() -> None:
    text = (
        "retry: 2000\n\n"
        ": keep-alive\n\n"
        'id: 5-abc\nevent: job.completed\ndata: {"a":\n'
        "data: 1}\n\n"
        "event: job.failed\ndata: {}\n\n"
        "id: 7\r\ndata:x\r\n\r\n"
    )
    messages = list(parse(text.splitlines(keepends=True)))
    assert messages == [
        Message("5-abc", "job.completed", '{"a":\n1}'),
        Message("5-abc", "job.failed", "{}"),
        Message("7", "message", "x"),
    ]
    assert messages[0].cloud_event() == {"a": 1}


def test_incomplete_message_at_the_end_is_not_emitted() -> None:
    assert list(parse(["id: 1\n", "data: {}\n"])) == []
