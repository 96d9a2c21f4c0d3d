#!/usr/bin/env bash
# The reliability, security and load suites over the whole system, in one command:
#   1. faults     tests/faults: SIGKILL of every process mid 10,000-job campaign and mid cycle run
#   2. bad input  tests/test_bad_input.py + tests/test_schemathesis.py against the gateway's merged OpenAPI
#   3. load       bench/load.py: 300 req/s for 2 minutes while a 100,000-job campaign runs (loopback only)
# 1 and 2 also run in ./scripts/test.sh (CI); 3 only here. Arguments go to bench/load.py
# (e.g. --rate 100 --duration 30 --jobs 10000 for a short run).
source "$(dirname "${BASH_SOURCE[0]}")/bootstrap.sh"

echo "== fault and bad-input suites"
uv run --locked pytest -p no:cacheprovider tests/faults tests/test_bad_input.py tests/test_schemathesis.py
echo "== load"
uv run --locked python bench/load.py "$@"
