"""What creating a file costs in a folder right now: a figure to read throughput benches by.

On ext4 without a journal (these machines' root), a new inode is chosen by skipping every inode of its block
group freed in the last seconds to minutes. Right after a large delete (a bench's or a test's temporary folder)
a create costs 25x what it costs on a clean group here (541 vs 21 us measured), and the local backend's jobs
create ~11 files each: the same code then measures up to 2x slower for about five minutes.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

PROBE_FILES = 500


def create_cost_us(folder: Path, files: int = PROBE_FILES) -> float:
    """Mean microseconds to create one empty file in a new subfolder of ``folder`` (the files are kept: deleting
    them would make the next creates dearer)."""
    probe = folder / f"create-probe-{time.time_ns()}"
    probe.mkdir(parents=True)
    start = time.perf_counter()
    for index in range(files):
        os.close(os.open(probe / str(index), os.O_CREAT | os.O_WRONLY, 0o644))
    return (time.perf_counter() - start) / files * 1e6
