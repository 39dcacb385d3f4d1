#!/usr/bin/env bash
# Sets up the environment and runs the test suite on all cores.
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
"$PY" -m pytest -n "${NGD_TEST_WORKERS:-2}" -q tests "$@"
