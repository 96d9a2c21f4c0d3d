"""The grabber's downloader: resumable, checksum-verified."""

from __future__ import annotations

import zlib
from pathlib import Path
from typing import Any

from prodflow_monitor.download import download_manifest, main
from prodflow_monitor.storage import adler32_hex


def _manifest(tmp_path: Path, files: dict[str, bytes]) -> dict[str, Any]:
    entries = []
    for name, data in files.items():
        source = tmp_path / "se" / name
        source.parent.mkdir(parents=True, exist_ok=True)
        source.write_bytes(data)
        entries.append(
            {
                "path": f"Mod/1_0_p1/{name}",
                "url": f"file://{source}",
                "size": len(data),
                "adler32": adler32_hex(zlib.adler32(data)),
            }
        )
    return {"format": "prodflow.manifest/1", "label": "L", "files": entries}


def test_download_verifies_and_skips_what_is_already_there(tmp_path: Path) -> None:
    files = {"a.root": b"a" * 300_000, "b.root": b"b" * 10}
    manifest = _manifest(tmp_path, files)
    seen: list[int] = []
    report = download_manifest(manifest, tmp_path / "dest", progress=seen.append)
    assert report.ok and sorted(report.downloaded) == ["Mod/1_0_p1/a.root", "Mod/1_0_p1/b.root"]
    assert sum(seen) == report.bytes == 300_010
    assert (tmp_path / "dest/Mod/1_0_p1/a.root").read_bytes() == files["a.root"]
    again = download_manifest(manifest, tmp_path / "dest", progress=False)
    assert again.downloaded == [] and len(again.skipped) == 2


def test_interrupted_download_resumes_from_the_partial_file(tmp_path: Path) -> None:
    data = bytes(range(256)) * 4000
    manifest = _manifest(tmp_path, {"big.root": data})
    partial = tmp_path / "dest/Mod/1_0_p1/big.root.part"
    partial.parent.mkdir(parents=True)
    partial.write_bytes(data[:500_000])
    seen: list[int] = []
    report = download_manifest(manifest, tmp_path / "dest", progress=seen.append)
    assert report.ok and (tmp_path / "dest/Mod/1_0_p1/big.root").read_bytes() == data
    assert seen[0] == 500_000  # the part already there was counted, not fetched again
    assert not partial.exists()


def test_corrupt_partial_and_wrong_source_are_caught(tmp_path: Path) -> None:
    data = b"z" * 1000
    manifest = _manifest(tmp_path, {"f.root": data})
    partial = tmp_path / "dest/Mod/1_0_p1/f.root.part"
    partial.parent.mkdir(parents=True)
    partial.write_bytes(b"X" * 400)  # wrong bytes: the whole-file checksum fails, so it starts over
    assert download_manifest(manifest, tmp_path / "dest", progress=False).ok
    assert (tmp_path / "dest/Mod/1_0_p1/f.root").read_bytes() == data
    manifest["files"][0]["adler32"] = "00000000"
    (tmp_path / "dest/Mod/1_0_p1/f.root").unlink()
    report = download_manifest(manifest, tmp_path / "dest2", progress=False)
    assert not report.ok and "adler32" in report.failed["Mod/1_0_p1/f.root"]
    assert not (tmp_path / "dest2/Mod/1_0_p1/f.root").exists()


def test_cli_downloads_a_saved_manifest(tmp_path: Path, capsys: Any) -> None:
    import json

    manifest = _manifest(tmp_path, {"c.root": b"c" * 5})
    (tmp_path / "m.json").write_text(json.dumps(manifest))
    assert main([str(tmp_path / "m.json"), str(tmp_path / "out"), "--quiet"]) == 0
    assert "1 downloaded" in capsys.readouterr().out
