"""Raw → dsp with dspeed's ``build_dsp``."""

# mypy: ignore-errors
import argparse
import contextlib
import fcntl
import sys
from pathlib import Path

from dspeed import build_dsp

WARM_MARKER = ".dspeed-jit-cache-warm"


@contextlib.contextmanager
def first_run_alone():
    """Run alone until the environment's JIT cache is warm.

    numba caches compiled processors beside dspeed's sources; two processes compiling the same processor into a
    cold cache at once can leave it corrupt (a segfault in a later job). So the first build_dsp of an environment
    holds a lock and leaves a marker; every later one runs in parallel.
    """
    marker = Path(sys.prefix) / WARM_MARKER
    if marker.exists():
        yield
        return
    try:
        handle = (Path(sys.prefix) / (WARM_MARKER + ".lock")).open("a")
    except OSError:  # a read-only environment (a container image) has its cache built in already
        yield
        return
    with handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield
        with contextlib.suppress(OSError):
            marker.touch()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", required=True)
    parser.add_argument("--input", required=True)
    parser.add_argument("--output", required=True)
    args = parser.parse_args()
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    with first_run_alone():
        build_dsp(args.input, args.output, dsp_config=args.config, write_mode="r")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
