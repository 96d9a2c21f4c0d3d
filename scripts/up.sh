#!/usr/bin/env bash
# Run the whole prodflow system on this machine with its embedded defaults (Ctrl-C stops it).
# Extra arguments go to `prodflow up` (e.g. --data-dir DIR --port 8000).
source "$(dirname "${BASH_SOURCE[0]}")/bootstrap.sh"
exec uv run --locked prodflow up "$@"
