#!/usr/bin/env bash
# Sets up the environment and runs the test suite on all cores. --dist loadfile keeps a file's tests on one
# worker, so a module fixture (a tiny training, a generated sequence) runs once, not once per worker; files
# go out in collection order (--no-loadscope-reorder), the longest first (tests/conftest.py).
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
"$PY" -m pytest -n "${NGD_TEST_WORKERS:-2}" --dist loadfile --no-loadscope-reorder -q tests "$@"
