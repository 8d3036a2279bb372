#!/usr/bin/env bash
# The clients against the real binary. The Python client (clients/python):
# installed with pip, as its users install it, into a throwaway virtual
# environment that sees Debian's pytest; its tests; then mypy --strict on
# it. Then the TypeScript client (scripts/test-client-ts.sh; node and npm
# come with the build's packages, for the playground).
set -euo pipefail
bin=$(realpath "${1:-build/pyexec}")
cd "$(dirname "$0")/.."
export PYEXEC_BIN=$bin
venv=$(mktemp -d -t pyexec-client-venv.XXXXXX)
trap 'rm -rf "$venv"' EXIT
/usr/bin/python3 -m venv --system-site-packages "$venv"
# No index, no isolated build: setuptools is Debian's (python3-setuptools).
# From a copy, so that the build leaves nothing in the checkout.
# Only what the package is made of: no stale build/ of an earlier install.
mkdir "$venv/src"
cp -r clients/python/pyproject.toml clients/python/README.md clients/python/src "$venv/src/"
"$venv/bin/python" -m pip install --quiet --no-index --no-build-isolation "$venv/src"
where=$(cd / && "$venv/bin/python" -c 'import pyexec_client; print(pyexec_client.__file__)')
[[ $where == "$venv"/* ]] || { echo "test-clients: pyexec_client imported from $where, not the venv" >&2; exit 1; }
"$venv/bin/python" -m pytest -q -p no:cacheprovider clients/python/tests "${@:2}"
if /usr/bin/python3 -c 'import mypy' 2>/dev/null; then
  /usr/bin/python3 -m mypy --strict --no-incremental --cache-dir=/dev/null clients/python/src/pyexec_client
else
  echo "test-clients: mypy is not installed (python3-mypy): compiling only" >&2
  /usr/bin/python3 -m compileall -q clients/python/src/pyexec_client
fi
scripts/test-client-ts.sh "$bin"
