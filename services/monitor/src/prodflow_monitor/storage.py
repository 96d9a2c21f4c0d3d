"""Copying a job's outputs to a storage element through fsspec, with size and adler32 checked after the copy.

A storage element is an fsspec URL prefix: ``file:///srv/se`` or ``root://host:1094//store/mc``. Each output
is written under a temporary name, checked (size, and adler32 by the server for XRootD or by reading the copy
back otherwise), then renamed into place, so a file with the final name is always complete and correct.
These functions are blocking: call them in a worker thread.
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fsspec  # type: ignore[import-untyped]
from prodflow_core.checksums import CHUNK as CHUNK
from prodflow_core.checksums import adler32_hex as adler32_hex
from prodflow_core.checksums import file_adler32 as file_adler32


class TransferError(RuntimeError):
    """An output could not be copied to the storage element, or the copy did not verify."""


@dataclass(frozen=True)
class OutputFile:
    """One registered output (the ``outputs`` entry of a job document)."""

    name: str
    url: str
    size: int
    adler32: str

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "url": self.url, "size": self.size, "adler32": self.adler32}


def _stream_adler32(handle: Any) -> tuple[int, str]:
    size, value = 0, 1
    while chunk := handle.read(CHUNK):
        size += len(chunk)
        value = zlib.adler32(chunk, value)
    return size, adler32_hex(value)


def output_files(folder: Path) -> Iterator[tuple[str, Path]]:
    """``(relative name, path)`` of every file below ``folder``, sorted; hidden files are skipped."""
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder)
        if path.is_file() and not any(part.startswith(".") for part in relative.parts):
            yield relative.as_posix(), path


def join_url(prefix: str, *parts: str) -> str:
    """``prefix`` and path parts joined with single slashes (``root://h//a`` keeps its double slash)."""
    return "/".join([prefix.rstrip("/"), *(p.strip("/") for p in parts if p)])


def _server_adler32(fs: Any, path: str) -> str | None:
    protocols = fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,)
    if "root" not in protocols:
        return None  # only XRootD computes checksums server-side here; others are read back
    algorithm, value = fs.checksum(path, "adler32")
    return str(value).lower().zfill(8) if algorithm == "adler32" else None


def verify_copy(fs: Any, path: str, size: int, adler32: str) -> None:
    """Raise :class:`TransferError` unless the file at ``path`` has ``size`` bytes and checksum ``adler32``."""
    stored_size = int(fs.size(path))
    if stored_size != size:
        raise TransferError(f"{path}: {stored_size} bytes stored, {size} sent")
    stored = _server_adler32(fs, path)
    if stored is None:
        with fs.open(path, "rb") as handle:
            _, stored = _stream_adler32(handle)
    if stored != adler32:
        raise TransferError(f"{path}: adler32 {stored} stored, {adler32} sent")


def copy_to_storage(source: Path, url: str) -> OutputFile:
    """Copy one local file to ``url``, verify it, and return its record; :class:`TransferError` on any failure."""
    try:
        fs, path = fsspec.core.url_to_fs(url)
        parent = path.rsplit("/", 1)[0]
        fs.makedirs(parent, exist_ok=True)
        partial = f"{path}.part-{os.getpid()}"
        size, value = 0, 1
        with open(source, "rb") as src, fs.open(partial, "wb") as dst:
            while chunk := src.read(CHUNK):
                size += len(chunk)
                value = zlib.adler32(chunk, value)
                dst.write(chunk)
        checksum = adler32_hex(value)
        verify_copy(fs, partial, size, checksum)
        if fs.exists(path):
            fs.rm(path)
        fs.mv(partial, path)
        if int(fs.size(path)) != size:
            raise TransferError(f"{url}: size changed while moving into place")
    except TransferError:
        raise
    except Exception as exc:  # fsspec backends raise OSError, their own errors, or XRootD status errors
        raise TransferError(f"{url}: {type(exc).__name__}: {exc}") from exc
    return OutputFile(name=source.name, url=url, size=size, adler32=checksum)


def transfer_outputs(folder: Path, destination: str) -> list[OutputFile]:
    """Copy every file below ``folder`` to ``destination`` (a URL prefix), keeping relative names."""
    if not folder.is_dir():
        raise TransferError(f"the job's output folder {folder} does not exist")
    files = list(output_files(folder))
    if not files:
        raise TransferError(f"the job left no output files in {folder}")
    records: list[OutputFile] = []
    for name, path in files:
        record = copy_to_storage(path, join_url(destination, name))
        records.append(OutputFile(name=name, url=record.url, size=record.size, adler32=record.adler32))
    return records
