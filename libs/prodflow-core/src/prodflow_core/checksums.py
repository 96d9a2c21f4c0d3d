"""adler32, the checksum storage elements and grid tools agree on, as 8 lowercase hex digits."""

from __future__ import annotations

import zlib
from pathlib import Path

CHUNK = 4 * 1024 * 1024


def adler32_hex(value: int) -> str:
    """An adler32 value as 8 lowercase hex digits (the form XRootD and the grid tools print)."""
    return f"{value & 0xFFFFFFFF:08x}"


def file_adler32(path: Path) -> tuple[int, str]:
    """Size and adler32 of a local file (blocking: call it in a worker thread on a request path)."""
    size, value = 0, 1
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            size += len(chunk)
            value = zlib.adler32(chunk, value)
    return size, adler32_hex(value)
