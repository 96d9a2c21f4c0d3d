"""Untrusted names, refs, URLs, paths and targets."""

from __future__ import annotations

from pathlib import Path

import pytest
from prodflow_cycle_runner.confinement import (
    UnsafeInput,
    check_git_url,
    check_name,
    check_ref,
    check_target,
    check_words,
    inside,
)

SCHEMES = {"file", "https", "ssh"}


@pytest.mark.parametrize("name", ["ref-v2.0.0", "cycle_1", "a", "L200.p03"])
def test_names_accepted(name: str) -> None:
    assert check_name(name) == name


@pytest.mark.parametrize("name", ["", ".", "..", "../x", "a/b", "-rf", "a b", "x;rm", "$(id)", "é", "a" * 65])
def test_names_refused(name: str) -> None:
    with pytest.raises(UnsafeInput) as err:
        check_name(name, "name")
    assert err.value.field == "name"


@pytest.mark.parametrize("ref", ["main", "v1.2.3", "feature/x", "0a1b2c3d"])
def test_refs_accepted(ref: str) -> None:
    assert check_ref(ref) == ref


@pytest.mark.parametrize("ref", ["--upload-pack=evil", "-b", "a..b", "x.lock", "a b", "a;b", "main/", ""])
def test_refs_refused(ref: str) -> None:
    with pytest.raises(UnsafeInput):
        check_ref(ref)


@pytest.mark.parametrize(
    "url",
    [
        "file:///srv/git/dataflow",
        "https://example.org/legend/dataflow.git",
        "git@example.org:legend/df.git",
        "ssh://git@example.org/legend/df.git",
    ],
)
def test_urls_accepted(url: str) -> None:
    assert check_git_url(url, SCHEMES) == url


@pytest.mark.parametrize(
    "url",
    [
        "ext::sh -c touch% /tmp/pwned",
        "--upload-pack=touch /tmp/x",
        "ftp://example.org/x",
        "file:///tmp/x;id",
        "https://x/$(id)",
        "/plain/path",
        "https://alice:ghp_secret-token@example.org/legend/dataflow.git",
        "https://oauth2:@example.org/legend/dataflow.git",
        "https://ghp_secret-token@example.org/legend/dataflow.git",
    ],
)
def test_urls_refused(url: str) -> None:
    with pytest.raises(UnsafeInput):
        check_git_url(url, SCHEMES)


def test_inside_refuses_traversal_and_absolute(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    assert inside(tmp_path, "a/b.txt") == tmp_path.resolve() / "a" / "b.txt"
    for bad in ("../x", "a/../../x", "/etc/passwd", "", "a\0b"):
        with pytest.raises(UnsafeInput):
            inside(tmp_path, bad)


def test_inside_refuses_symlink_escape(tmp_path: Path) -> None:
    cycle = tmp_path / "cycle"
    cycle.mkdir()
    (tmp_path / "outside").mkdir()
    (cycle / "link").symlink_to(tmp_path / "outside")
    with pytest.raises(UnsafeInput, match="outside"):
        inside(cycle, "link/file.lh5")
    (cycle / "inner").mkdir()
    (cycle / "ok").symlink_to(cycle / "inner")
    assert inside(cycle, "ok/f") == (cycle / "inner" / "f").resolve()


@pytest.mark.parametrize(
    "target", ["all-l200-p03-r001-phy-dsp.gen", "build_dsp", "generated/tier/dsp/x.lh5", "all-l200-hit.gen"]
)
def test_targets_accepted(tmp_path: Path, target: str) -> None:
    assert check_target(target, tmp_path) == target


@pytest.mark.parametrize(
    "target",
    [
        "--delete-all-output",
        "-n",
        "all.gen; rm -rf /",
        "$(touch x)",
        "`id`",
        "a|b",
        "a>b",
        "../other-cycle/x.gen",
        "/etc/passwd",
        "x\ny",
        "a b",
    ],
)
def test_targets_refused(tmp_path: Path, target: str) -> None:
    with pytest.raises(UnsafeInput):
        check_target(target, tmp_path)


def test_command_words() -> None:
    assert check_words("apptainer run --bind /data", "cmd") == ["apptainer", "run", "--bind", "/data"]
    assert check_words("", "cmd") == []
    for bad in ("sh -c 'id'", "x; id", "x && y", "$(id)", "--flag first", "a|b"):
        with pytest.raises(UnsafeInput):
            check_words(bad, "cmd")
