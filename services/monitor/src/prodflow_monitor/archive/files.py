"""Archive files on a storage element: JSON lines in gzip members, each member a chunk of documents.

A file is a sequence of complete gzip members (``gzip -dc`` reads it whole, like any ``.jsonl.gz``); the SQL index
keeps each job's member (byte offset and size) and line, so reading one job decompresses one member of about
:data:`MEMBER_DOCS` documents, never the whole file. Files are written to ``<name>.part`` and moved into place
once complete; size, adler32 and sha256 are computed while writing, and checked again before a restore.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import zlib
from collections.abc import AsyncIterator, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import fsspec  # type: ignore[import-untyped]

from prodflow_monitor.storage import CHUNK, adler32_hex, join_url

MEMBER_DOCS = 2000
"""Documents per gzip member: what a lookup by id decompresses, and what a write holds in memory."""
ARCHIVE_FORMAT = "prodflow.archive/1"
MANIFEST_NAME = "manifest.json"
_ID = re.compile(r'\{"_id":"((?:[^"\\]|\\.)*)"')
"""The ``_id`` that starts a line (keys are sorted, and ``_id`` sorts before every lower-case key)."""


class ArchiveFileError(RuntimeError):
    """An archive file is missing, or its size or checksums differ from the manifest's."""


def archive_folder(storage_element: str, label: str) -> str:
    """``<se>/archive/<label>``: where a label's archive lives on its storage element."""
    return join_url(storage_element, "archive", label)


def jobs_file_name(database: str) -> str:
    """The archive file of a label's job documents of ``database``."""
    return f"jobs-{database}.jsonl.gz"


@dataclass(frozen=True)
class Member:
    """Where one gzip member of a file lies."""

    offset: int
    size: int


@dataclass(frozen=True)
class FileRecord:
    """An archive file as the manifest lists it."""

    name: str
    documents: int
    size: int
    adler32: str
    sha256: str

    def manifest_entry(self) -> dict[str, Any]:
        """The file's entry in ``manifest.json``."""
        return {
            "name": self.name,
            "documents": self.documents,
            "size": self.size,
            "adler32": self.adler32,
            "sha256": self.sha256,
        }


def encode_member(docs: Sequence[Mapping[str, Any]]) -> bytes:
    """One complete gzip member of ``docs`` as JSON lines (sorted keys: the same document, the same bytes)."""
    text = "".join(json.dumps(doc, sort_keys=True, separators=(",", ":")) + "\n" for doc in docs)
    packer = zlib.compressobj(6, zlib.DEFLATED, 31)  # wbits 31: a gzip header and trailer
    return packer.compress(text.encode()) + packer.flush()


def decode_member(data: bytes, wanted: Collection[str] | None = None) -> list[dict[str, Any]]:
    """The documents of one gzip member (only those whose ``_id`` is in ``wanted``, if given: the other lines are
    not parsed)."""
    lines = zlib.decompress(data, 31).decode().splitlines()
    if wanted is None:
        return [json.loads(line) for line in lines if line]
    out = []
    for line in lines:
        found = _ID.match(line)
        if found is None or json.loads(f'"{found[1]}"') in wanted:
            doc = json.loads(line)
            if doc.get("_id") in wanted:
                out.append(doc)
    return out


@dataclass
class ArchiveWriter:
    """Writes one archive file member by member (blocking I/O runs in a thread, off the event loop)."""

    folder: str
    name: str
    documents: int = 0
    size: int = 0
    _adler: int = 1
    _sha: Any = field(default_factory=hashlib.sha256)
    _fs: Any = None
    _path: str = ""
    _handle: Any = None

    async def open(self) -> None:
        """Start ``<name>.part`` (any earlier partial file is overwritten)."""

        def start() -> None:
            self._fs, folder = fsspec.core.url_to_fs(self.folder)
            self._fs.makedirs(folder, exist_ok=True)
            self._path = f"{folder.rstrip('/')}/{self.name}"
            self._handle = self._fs.open(f"{self._path}.part", "wb")

        await asyncio.to_thread(start)

    async def write(self, docs: Sequence[Mapping[str, Any]]) -> Member:
        """Append one member of ``docs``; where it lies in the file."""
        data = encode_member(docs)
        member = Member(self.size, len(data))
        await asyncio.to_thread(self._handle.write, data)
        self.size += len(data)
        self._adler = zlib.adler32(data, self._adler)
        self._sha.update(data)
        self.documents += len(docs)
        return member

    async def close(self) -> FileRecord:
        """Finish the file, move it into place and return its record."""

        def finish() -> None:
            self._handle.close()
            stored = int(self._fs.size(f"{self._path}.part"))
            if stored != self.size:
                raise ArchiveFileError(f"{self._path}: {stored} bytes stored, {self.size} written")
            if self._fs.exists(self._path):
                self._fs.rm(self._path)
            self._fs.mv(f"{self._path}.part", self._path)

        await asyncio.to_thread(finish)
        return FileRecord(self.name, self.documents, self.size, adler32_hex(self._adler), self._sha.hexdigest())


async def write_manifest(folder: str, manifest: Mapping[str, Any]) -> None:
    """Store ``manifest.json`` in ``folder`` (written last: its presence says the archive is complete)."""

    def put() -> None:
        with fsspec.open(join_url(folder, MANIFEST_NAME), "w") as handle:
            json.dump(manifest, handle, indent=2, sort_keys=True)

    await asyncio.to_thread(put)


async def read_manifest(folder: str) -> dict[str, Any]:
    """The ``manifest.json`` of an archive; :class:`ArchiveFileError` if it is missing."""

    def get() -> dict[str, Any]:
        with fsspec.open(join_url(folder, MANIFEST_NAME), "r") as handle:
            return dict(json.load(handle))

    try:
        return await asyncio.to_thread(get)
    except FileNotFoundError as exc:
        raise ArchiveFileError(f"no manifest in {folder}") from exc


async def read_member(
    folder: str, name: str, member: Member, wanted: Collection[str] | None = None
) -> list[dict[str, Any]]:
    """The documents of one member of an archive file (one ranged read), or those of them in ``wanted``."""

    def get() -> bytes:
        fs, path = fsspec.core.url_to_fs(join_url(folder, name))
        with fs.open(path, "rb") as handle:
            handle.seek(member.offset)
            return bytes(handle.read(member.size))

    return decode_member(await asyncio.to_thread(get), wanted)


def _lines(text: bytes) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.decode().splitlines() if line]


async def members_of(folder: str, name: str) -> AsyncIterator[list[dict[str, Any]]]:
    """Every member of an archive file in order, one at a time (never the whole file in memory)."""
    fs, path = fsspec.core.url_to_fs(join_url(folder, name))
    handle = await asyncio.to_thread(fs.open, path, "rb")
    try:
        unpacker, text, fed, data = zlib.decompressobj(31), b"", False, b""
        while True:
            if not data:
                data = await asyncio.to_thread(handle.read, CHUNK)
                if not data:
                    break
            text += unpacker.decompress(data)
            fed = True
            if unpacker.eof:  # one member ended: its lines are complete; the rest starts the next member
                data = unpacker.unused_data
                yield _lines(text)
                unpacker, text, fed = zlib.decompressobj(31), b"", False
            else:
                data = b""
        if fed:
            raise ArchiveFileError(f"{name}: the last gzip member is truncated")
    finally:
        await asyncio.to_thread(handle.close)


async def check_file(folder: str, record: Mapping[str, Any]) -> None:
    """Read a whole archive file and compare its size, adler32 and sha256 with its manifest ``record``."""

    def digest() -> tuple[int, str, str]:
        fs, path = fsspec.core.url_to_fs(join_url(folder, str(record["name"])))
        size, adler, sha = 0, 1, hashlib.sha256()
        with fs.open(path, "rb") as handle:
            while data := handle.read(CHUNK):
                size += len(data)
                adler = zlib.adler32(data, adler)
                sha.update(data)
        return size, adler32_hex(adler), sha.hexdigest()

    try:
        found = await asyncio.to_thread(digest)
    except FileNotFoundError as exc:
        raise ArchiveFileError(f"{record['name']} is missing from {folder}") from exc
    wanted = (int(record["size"]), str(record["adler32"]), str(record["sha256"]))
    if found != wanted:
        raise ArchiveFileError(f"{record['name']}: size/adler32/sha256 {found} differ from the manifest's {wanted}")
