#!/usr/bin/env bash
# Install the Debian packages one purpose of pyexec needs, and only those
# that are missing. Runs as root on a fresh Debian 12; as another user it
# only reports what is missing.
#
#   scripts/deps.sh PURPOSE...     (default: build)
#
# Purposes, each with what it includes:
#   build      compile pyexec (`make`)
#   serve      build + what the service and its shipped jobs run (`make serve`)
#   test       serve + the test suites' tools (`make test`)
#   bench      build + the benchmarks' baselines and load generators (`make bench`)
#   fuzz       build + clang with libFuzzer (`make fuzz`)
#   format     the format check of changed lines (`make check-format`)
#   vm         the cgroup v2 guest of `make test-vm` (qemu, debootstrap)
#   container  the image of `make test-container` (podman, debootstrap)
#   all        every purpose above
set -euo pipefail

pkgs_build=(
  gcc make pkg-config meson ninja-build
  libseccomp-dev libjansson-dev libmicrohttpd-dev libyaml-dev
  # pyexec-runner embeds CPython 3.11 (the runner and the zygote); meson.build
  # asks python3.11-config for its flags (python3.11-dev)
  libpython3.11-dev python3.11-dev
  # the pyexec(1) man page (docs/pyexec.1.scd)
  scdoc
  # sd_notify's declarations: pyexec serve tells systemd when it is ready
  # (libsystemd itself is loaded at run time, only under systemd)
  libsystemd-dev
  # the Redis queue backend's declarations (libhiredis is loaded at run
  # time, by a service or worker whose QUEUE_URL is redis://)
  libhiredis-dev
  # the callbacks of submissions: libcurl's and OpenSSL's declarations
  # (pyexec serve loads libcurl.so.4 and libcrypto.so.3 at run time)
  libcurl4-openssl-dev libssl-dev
  # the playground page (web/playground, meson -Dplayground): npm installs
  # its pinned editor packages, esbuild bundles them into the binary
  nodejs esbuild
)
# npm only where the command is missing: NodeSource's nodejs includes it,
# and Debian's npm package conflicts with that nodejs.
if ! command -v npm >/dev/null; then
  pkgs_build+=(npm)
fi

pkgs_serve=(
  # the shipped jobs' interpreters (jobs/jobs.yaml): compose runs
  # /usr/bin/python3 with Pillow, render runs /usr/bin/blender (Cycles on
  # the CPU, FFmpeg's H.264 for the turntable)
  python3 python3-pil blender
  # the science policy's scientific stack, imported by programs
  python3-numpy python3-matplotlib python3-pandas
  # the Redis queue backend (QUEUE_URL=redis://...), loaded with dlopen()
  libhiredis0.14
  # the callbacks of submissions (webhooks): HTTP and their signature
  libcurl4 libssl3 ca-certificates
)

pkgs_test=(
  libcmocka-dev python3-pytest python3-prometheus-client
  # the documents' test parses Markdown and runs their examples (curl)
  python3-markdown-it curl
  # ip: the network deny test probes the host's own addresses, listed by ip
  iproute2
  # the unprivileged suite's user (useradd) and its switch (runuser)
  util-linux passwd
  # systemd-analyze verify of the installed pyexec.service
  systemd
  # the responses' check against the OpenAPI description (JSON Schema 2020-12)
  python3-jsonschema
  # the queue's contract tests run their own redis-server
  redis-server
  # the scale-out test puts two instances behind a real load balancer
  haproxy
  # the Python client's tests: pip into a venv (setuptools and wheel build it offline), mypy --strict
  python3-venv python3-setuptools python3-wheel python3-mypy
  # the playground's tests drive the page in headless Chromium
  chromium chromium-driver python3-selenium
)

pkgs_bench=(bubblewrap hyperfine wrk curl)

pkgs_fuzz=(
  # clang with libFuzzer and the sanitizer runtimes; llvm for
  # llvm-symbolizer (symbolised crash reports)
  clang libclang-rt-14-dev llvm
)

pkgs_format=(clang-format git)

pkgs_vm=(qemu-system-x86 qemu-utils debootstrap e2fsprogs git)

pkgs_container=(podman runc debootstrap uidmap slirp4netns fuse-overlayfs git)

# Which purposes a purpose includes.
expand() {
  case $1 in
  build) echo build ;;
  serve) echo build serve ;;
  test) echo build serve test ;;
  bench) echo build bench ;;
  fuzz) echo build fuzz ;;
  format | vm | container) echo "$1" ;;
  all) echo build serve test bench fuzz format vm container ;;
  *)
    echo "deps: unknown purpose '$1' (build, serve, test, bench, fuzz, format, vm, container, all)" >&2
    exit 2
    ;;
  esac
}

packages=()
for purpose in "${@:-build}"; do
  purposes=$(expand "$purpose") || exit
  for p in $purposes; do
    declare -n list="pkgs_$p"
    packages+=("${list[@]}")
    unset -n list
  done
done

missing=()
for p in $(printf '%s\n' "${packages[@]}" | sort -u); do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if ((${#missing[@]} == 0)); then
  exit 0
fi

if [[ $(id -u) -ne 0 ]]; then
  echo "deps: missing Debian packages: ${missing[*]}" >&2
  echo "deps: run 'scripts/deps.sh $*' as root (or: apt-get install ${missing[*]})" >&2
  exit 1
fi

echo "deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
