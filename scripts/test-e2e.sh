#!/usr/bin/env bash
# End-to-end tests through the real binary, with Debian's python3 and pytest
# (not whatever python3 comes first in PATH).
set -euo pipefail
bin=$(realpath "${1:-build/pyexec}")
cd "$(dirname "$0")/.."
export PYEXEC_BIN=$bin
exec /usr/bin/python3 -m pytest -q -p no:cacheprovider tests/e2e tests/jobs "${@:2}"
