#!/usr/bin/env bash
# Run every check CI runs: ruff, mypy --strict, then the test suite against real servers started by fixtures.
# Extra arguments go to pytest (e.g. -m "not integration", or a path).
source "$(dirname "${BASH_SOURCE[0]}")/bootstrap.sh"

echo "== ruff"
uv run --locked ruff check .
uv run --locked ruff format --check .
echo "== mypy --strict"
uv run --locked mypy -p prodflow_core -p prodflow_gateway -p prodflow_cli -p prodflow_request_api \
  -p prodflow_submitter -p prodflow_monitor -p prodflow_cycle_runner -p prodflow_notifier
echo "== pytest"
set +e
uv run --locked pytest "$@"
code=$?
set -e
if [ "$code" = 5 ]; then
  echo "pytest collected no tests: that is a failure here" >&2
  exit 1
fi
exit "$code"
