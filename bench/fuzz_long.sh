#!/usr/bin/env bash
# The long fuzz, run by hand (CI runs the same tests derandomized and short):
#     bench/fuzz_long.sh            # both files, random, about 250-700 examples per target
#     bench/fuzz_long.sh -k ingest  # extra arguments go to pytest
# Failures found are kept in $TMPDIR/wh-fuzz-examples and replayed first by the next long run.
set -euo pipefail
cd "$(dirname "$0")/.."
export WH_FUZZ=long
exec .venv/bin/pytest -q -p no:xdist -s --durations=0 --timeout=1800 tests/test_fuzz_sql.py tests/test_fuzz_relay.py "$@"
