#!/usr/bin/env bash
# Install the Debian packages pyexec needs to build, test and benchmark,
# and only those that are missing. Runs as root on a fresh Debian 12; as
# another user it only reports what is missing.
set -euo pipefail

packages=(
  # build
  gcc make pkg-config meson ninja-build
  libseccomp-dev libjansson-dev libmicrohttpd-dev libyaml-dev
  # the pyexec(1) man page (docs/pyexec.1.scd)
  scdoc
  # pyexec-runner embeds CPython 3.11 (the runner and the zygote); meson.build
  # asks python3.11-config for its flags (python3.11-dev)
  libpython3.11-dev python3.11-dev
  # tests
  libcmocka-dev python3 python3-pytest python3-pil python3-prometheus-client
  # the format check of changed lines (scripts/check-format.sh: git clang-format)
  clang-format
  # the documents' test parses Markdown (tests/e2e/test_docs.py)
  python3-markdown-it
  # ip: the network deny test probes the host's own addresses, listed by ip
  iproute2
  # make fuzz: clang with libFuzzer and the sanitizer runtimes;
  # llvm for llvm-symbolizer (symbolised crash reports)
  clang libclang-rt-14-dev llvm
  # unprivileged test user (runuser, useradd)
  util-linux passwd
  # benchmarks
  bubblewrap hyperfine wrk curl
  # render job (Cycles CPU, FFmpeg H.264) and its tests
  blender
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if ((${#missing[@]} == 0)); then
  exit 0
fi

if [[ $(id -u) -ne 0 ]]; then
  echo "deps: missing Debian packages: ${missing[*]}" >&2
  echo "deps: run 'make deps' as root (or: apt-get install ${missing[*]})" >&2
  exit 1
fi

echo "deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
