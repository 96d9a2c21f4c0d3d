"""Copying outputs to a file:// storage element, with size and adler32 checked after the copy."""

from __future__ import annotations

import zlib
from pathlib import Path

import pytest
from prodflow_monitor.storage import (
    TransferError,
    adler32_hex,
    copy_to_storage,
    file_adler32,
    join_url,
    transfer_outputs,
    verify_copy,
)


def _outputs(folder: Path) -> dict[str, bytes]:
    files = {"a.root": b"A" * 10_000, "sub/b.txt": b"hello\n", ".hidden": b"x"}
    for name, data in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    return files


def test_outputs_are_copied_with_size_and_adler32(tmp_path: Path) -> None:
    files = _outputs(tmp_path / "out")
    se = f"file://{tmp_path / 'se'}"
    records = transfer_outputs(tmp_path / "out", join_url(se, "L", "M", "1_0_p1"))
    assert [r.name for r in records] == ["a.root", "sub/b.txt"]  # hidden files are not outputs
    for record in records:
        data = files[record.name]
        assert record.size == len(data) and record.adler32 == adler32_hex(zlib.adler32(data))
        stored = tmp_path / "se" / "L" / "M" / "1_0_p1" / record.name
        assert stored.read_bytes() == data and record.url == f"{se}/L/M/1_0_p1/{record.name}"
    assert not list((tmp_path / "se").rglob("*.part-*"))


def test_adler32_matches_zlib_and_known_value(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"Wikipedia")
    assert file_adler32(tmp_path / "f") == (9, "11e60398")  # the textbook adler32 example


def test_a_corrupted_copy_does_not_verify(tmp_path: Path) -> None:
    import fsspec  # type: ignore[import-untyped]

    (tmp_path / "x").write_bytes(b"payload")
    fs = fsspec.filesystem("file")
    with pytest.raises(TransferError, match="adler32"):
        verify_copy(fs, str(tmp_path / "x"), 7, "00000000")
    with pytest.raises(TransferError, match="bytes stored"):
        verify_copy(fs, str(tmp_path / "x"), 8, "00000000")


def test_missing_or_empty_output_folder_and_unwritable_se_are_transfer_errors(tmp_path: Path) -> None:
    with pytest.raises(TransferError, match="does not exist"):
        transfer_outputs(tmp_path / "nope", f"file://{tmp_path}/se")
    (tmp_path / "empty").mkdir()
    with pytest.raises(TransferError, match="no output files"):
        transfer_outputs(tmp_path / "empty", f"file://{tmp_path}/se")
    (tmp_path / "blocker").write_text("a file where a folder should be")
    (tmp_path / "src").write_text("data")
    with pytest.raises(TransferError):
        copy_to_storage(tmp_path / "src", f"file://{tmp_path}/blocker/sub/src")
