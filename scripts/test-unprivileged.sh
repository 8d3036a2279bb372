#!/usr/bin/env bash
# The end-to-end suite again as an unprivileged user: the user-namespace
# path, with whatever cgroup access such a user has (none on most hosts, so
# the rlimit fallbacks). Needs root to create the user and drop to it.
set -euo pipefail
bin=$(realpath "${1:-build/pyexec}")
cd "$(dirname "$0")/.."
user=pyexec-test

if [[ $(id -u) -ne 0 ]]; then
  echo "test-unprivileged: already unprivileged; running the suite directly" >&2
  exec scripts/test-e2e.sh "$bin" "${@:2}"
fi
id "$user" >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin "$user"

# The checkout may sit below a directory the user cannot enter (/root):
# copy what the suite needs to a world-readable place.
work=$(mktemp -d /tmp/pyexec-unpriv.XXXXXX)
trap 'rm -rf "$work"' EXIT
chmod 755 "$work"
mkdir -p "$work/build" "$work/tests"
cp "$bin" "$work/build/pyexec"
cp "$(dirname "$bin")/pyexec-runner" "$work/build/pyexec-runner"
if [[ -e "$(dirname "$bin")/pyexec-init" ]]; then cp "$(dirname "$bin")/pyexec-init" "$work/build/pyexec-init"; fi
cp -r tests/e2e "$work/tests/e2e"
# The job scripts the jobs tests run, and jobs/make_shirt_blend.py, which
# builds their .blend template (tests/e2e/test_jobs.py finds them in jobs/
# beside tests/e2e).
cp -r jobs "$work/jobs"
# The sources test_cli_docs.py holds the help texts against.
cp meson.build "$work/meson.build"
cp -r src "$work/src"
# The OpenAPI description every response is checked against (openapi_check.py).
mkdir -p "$work/docs"
cp docs/openapi.json "$work/docs/openapi.json"
chmod -R a+rX "$work"
cd "$work"
# The installed runner when it is this build's (see test-e2e.sh).
runner=$work/build/pyexec-runner
installed=/usr/local/libexec/pyexec/pyexec-runner
same_init() { # pyexec-init beside both, the same, or beside neither (not x86-64)
  if [[ -e $2 ]]; then cmp -s "$1" "$2"; else [[ ! -e $1 ]]; fi
}
if [[ -x $installed ]] && cmp -s "$installed" "$runner" &&
  same_init "$(dirname "$installed")/pyexec-init" "$work/build/pyexec-init"; then runner=$installed; fi
# An unprivileged service cannot reserve huge pages for its zygote
# (zygote-heap.c): the host's pool is the operator's. The suite runs with one,
# so that the tests see such a service leave it alone when it cannot bound a
# sandbox's share with a hugetlb cgroup (test_hugetlb_bounds.py).
huge=/proc/sys/vm/nr_hugepages
huge_before=$(cat "$huge")
trap 'echo "$huge_before" > "$huge"; rm -rf "$work"' EXIT
echo $((huge_before + 256)) > "$huge"
suite() {
  runuser -u "$user" -- env HOME="$work" PYEXEC_BIN="$work/build/pyexec" PYEXEC_RUNNER="$runner" \
    /usr/bin/python3 -m pytest -q -p no:cacheprovider "$@"
}
suite tests/e2e "${@:2}"
