#!/usr/bin/env bash
# End-to-end tests through the real binary, with Debian's python3 and pytest
# (not whatever python3 comes first in PATH).
set -euo pipefail
bin=$(realpath "${1:-build/pyexec}")
cd "$(dirname "$0")/.."
export PYEXEC_BIN=$bin
# The installed runner (make build installs it as root, pyexec-init beside
# it), as a deployment has it; else the one beside the binary.
installed=/usr/local/libexec/pyexec/pyexec-runner
same_init() { # pyexec-init beside both, the same, or beside neither (not x86-64)
  if [[ -e $2 ]]; then cmp -s "$1" "$2"; else [[ ! -e $1 ]]; fi
}
if [[ -x $installed ]] && cmp -s "$installed" "$(dirname "$bin")/pyexec-runner" &&
  same_init "$(dirname "$installed")/pyexec-init" "$(dirname "$bin")/pyexec-init"; then
  export PYEXEC_RUNNER=$installed
fi
# E2E_TESTS: which test files or directories (default: all of them).
read -ra tests <<<"${E2E_TESTS:-tests/e2e tests/jobs}"
exec /usr/bin/python3 -m pytest -q -p no:cacheprovider "${tests[@]}" "${@:2}"
