"""Downloading a grabber manifest: resumable, every file checked against its size and adler32.

``download_manifest(manifest, dest)`` puts each file at ``dest/<path>`` (``path`` from the manifest). A file
already there with the right size and checksum is skipped; an interrupted download left as ``<file>.part``
continues where it stopped; a file whose checksum does not match is fetched again from the start. Files are
read through fsspec, so ``file://``, ``root://`` and any other fsspec URL work.
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import fsspec  # type: ignore[import-untyped]
from tqdm import tqdm  # type: ignore[import-untyped]

from prodflow_monitor.storage import CHUNK, adler32_hex

Progress = Callable[[int], None]


class ChecksumMismatch(RuntimeError):
    """A downloaded file does not have the size or adler32 the manifest gives."""


@dataclass
class DownloadReport:
    """What a download did."""

    downloaded: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    bytes: int = 0

    @property
    def ok(self) -> bool:
        return not self.failed


def _checksum_of(path: Path) -> tuple[int, int]:
    size, value = 0, 1
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            size += len(chunk)
            value = zlib.adler32(chunk, value)
    return size, value


def _complete(path: Path, size: int, adler32: str) -> bool:
    if not path.is_file() or path.stat().st_size != size:
        return False
    return adler32_hex(_checksum_of(path)[1]) == adler32.lower()


def _fetch(url: str, partial: Path, size: int, tick: Progress) -> int:
    """Append the missing tail of ``url`` to ``partial``; returns the adler32 of the whole file."""
    have, value = _checksum_of(partial) if partial.exists() else (0, 1)
    if have > size:
        partial.unlink()
        have, value = 0, 1
    tick(have)
    with fsspec.open(url, "rb") as src, open(partial, "ab") as dst:
        if have:
            src.seek(have)
        while chunk := src.read(CHUNK):
            dst.write(chunk)
            value = zlib.adler32(chunk, value)
            tick(len(chunk))
        dst.flush()
        os.fsync(dst.fileno())
    return value


def download_file(entry: Mapping[str, Any], dest: Path, tick: Progress, attempts: int = 2) -> bool:
    """Download one manifest entry below ``dest``; False if it was already there and correct."""
    target = dest / str(entry["path"])
    size, adler32 = int(entry["size"]), str(entry["adler32"]).lower()
    if _complete(target, size, adler32):
        tick(size)
        return False
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".part")
    for attempt in range(1, attempts + 1):
        value = _fetch(str(entry["url"]), partial, size, tick)
        got = partial.stat().st_size
        if got == size and adler32_hex(value) == adler32:
            os.replace(partial, target)
            return True
        partial.unlink(missing_ok=True)  # corrupt or changed at the source: start over
        if attempt == attempts:
            raise ChecksumMismatch(
                f"{entry['url']}: got {got} bytes adler32 {adler32_hex(value)}, want {size} {adler32}"
            )
    return True  # pragma: no cover - the loop returns or raises


def download_manifest(
    manifest: Mapping[str, Any], dest: Path | str, progress: bool | Progress = True
) -> DownloadReport:
    """Download every file of a grabber manifest into ``dest`` (see the module docstring).

    ``progress``: ``True`` shows a progress bar (bytes) on stderr, ``False`` none, or a callable receiving the
    number of bytes accounted for at each step. Failures of single files are collected in the report, not raised.
    """
    dest = Path(dest)
    files = list(manifest.get("files", []))
    total = sum(int(entry["size"]) for entry in files)
    report = DownloadReport()
    bar = tqdm(
        total=total,
        unit="B",
        unit_scale=True,
        desc=str(manifest.get("label", "download")),
        disable=progress is not True,
    )
    tick: Progress = progress if callable(progress) else bar.update
    try:
        for entry in files:
            path = str(entry["path"])
            try:
                fetched = download_file(entry, dest, tick)
            except (OSError, ChecksumMismatch) as exc:
                report.failed[path] = str(exc)
                continue
            if fetched:
                report.downloaded.append(path)
                report.bytes += int(entry["size"])
            else:
                report.skipped.append(path)
    finally:
        bar.close()
    return report


def main(argv: list[str] | None = None) -> int:
    """``prodflow-grab MANIFEST.json DEST [--quiet]``: download a manifest saved from ``GET /api/grab/{label}``."""
    import argparse
    import json
    import sys

    parser = argparse.ArgumentParser(prog="prodflow-grab", description=main.__doc__)
    parser.add_argument("manifest", help="manifest JSON file ('-' for standard input)")
    parser.add_argument("dest", type=Path, help="folder to download into")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    text = sys.stdin.read() if args.manifest == "-" else Path(args.manifest).read_text()
    report = download_manifest(json.loads(text), args.dest, progress=not args.quiet)
    for path, error in sorted(report.failed.items()):
        print(f"FAILED {path}: {error}", file=sys.stderr)
    print(f"{len(report.downloaded)} downloaded, {len(report.skipped)} already there, {len(report.failed)} failed")
    return 0 if report.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
