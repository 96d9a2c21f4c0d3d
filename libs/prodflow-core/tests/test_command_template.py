"""Command templates: placeholders known and unquoted, values shell-quoted, NUL refused."""

from __future__ import annotations

import subprocess

import pytest
from prodflow_core.command_template import (
    UnsafeValue,
    fields_with_nul,
    fill,
    quoted_placeholders,
    template_problems,
    unknown_placeholders,
)

HOSTILE = ["1; id", "$(touch /tmp/x)", "`id`", "a\nb", "'", '"', "\\", "*", "x' ; id ; '", "-rf /", " ", "$HOME"]


def test_unknown_placeholders_of_a_command() -> None:
    command = "rat -s {seed} -r {run} -N {events} -x radius={radius} -o {output_dir}/{nonsense}.root"
    assert unknown_placeholders(command, {"radius"}) == ["nonsense"]
    assert unknown_placeholders(command, ()) == ["nonsense", "radius"]


@pytest.mark.parametrize(
    ("command", "quoted"),
    [
        ("rat -l {label} -o {output_dir}/x.root", []),
        ("rat -l '{label}'", ["label"]),
        ('rat -l "{label}"', ["label"]),
        ('rat -l "$HOME/{label}" {run}', ["label"]),
        ("echo 'it''s' {run} \\{chunk}", ["chunk"]),
        ('echo "a \\" {run}" {chunk}', ["run"]),
        ("printf '%s\\n' {label} >{output_dir}/out", []),
        ("echo '\\' {run}", []),  # a backslash inside single quotes escapes nothing: {run} is outside
    ],
)
def test_placeholders_inside_quotes_are_found(command: str, quoted: list[str]) -> None:
    assert quoted_placeholders(command) == quoted


def test_template_problems_name_both_rules() -> None:
    problems = template_problems("rat '{label}' {colour}", ())
    assert any("unknown placeholders ['colour']" in p for p in problems)
    assert any("inside quotes" in p and "label" in p for p in problems)
    assert template_problems("rat {label}", ()) == []


@pytest.mark.parametrize("value", HOSTILE)
def test_a_filled_value_reaches_the_command_as_one_argument(value: str) -> None:
    line = fill("printf '%s\\0' {a} {b}", {"a": value, "b": "end"})
    out = subprocess.run(["/bin/sh", "-c", line], capture_output=True, check=True).stdout
    assert out.split(b"\0")[:-1] == [value.encode(), b"end"]


def test_nul_is_refused() -> None:
    assert fields_with_nul({"a": "x\0y", "b": 3, "c": "ok"}) == ["a"]
    assert fields_with_nul({"m": [{"t": {"k": "ok", "n\0": 1}}, "\0"]}) == ["m.0.t.n\0", "m.1"]
    with pytest.raises(UnsafeValue):
        fill("echo {a}", {"a": "x\0y"})
