#!/usr/bin/env bash
# make test-fresh: the README's two commands, as root, in a clean clone of
# this checkout's HEAD, on a pristine Debian 12 (debootstrap minbase plus
# make, gcc, libc6-dev, git and ca-certificates). A development machine
# already has every package; this is what finds one scripts/deps.sh misses.
#
#   scripts/test-fresh.sh [--serve-only | --test-only]   (or FRESH=serve|test|all)
#
# The serve half: `make serve` (PORT set to a free port) until
# GET /health/ready answers 200, then SIGTERM to the service, which must
# exit 0. The test half: `CI=true make test`, with the end-to-end suites
# against the sanitized builds cut to two files that drive the CLI and the
# service (FRESH_SANITIZED_TESTS): the host's `make test` runs them whole;
# here they prove that the sanitized builds and their runtimes install and
# run from nothing, in a third of the time. Each half the selection names
# runs in the same root, serve first, as an operator would type them.
#
# The pristine root is made once and cached outside the repository
# ($PYEXEC_FRESH_CACHE, /var/cache/pyexec-fresh): it is only ever the
# read-only lower layer of an overlay, and each run writes to an upper
# directory of its own, removed on exit. Downloaded .debs are cached beside
# it (bound at /var/cache/apt/archives) so a second run does not fetch them
# again; what is installed still starts from the pristine package set.
#
# The root is entered with pivot_root in a private mount namespace, not a
# plain chroot: the kernel refuses CLONE_NEWUSER to a chrooted process, and
# the unprivileged tests need it. The network namespace is the host's (apt
# reaches the mirror, the service listens on the host's loopback), and so is
# /run/pyexec (see enter). Every mount is made inside that namespace, so
# none outlives the run.
set -euo pipefail

run= # this run's directory under $cache (the overlay's upper and work)
cache=${PYEXEC_FRESH_CACHE:-/var/cache/pyexec-fresh}
suite=bookworm
include=make,gcc,libc6-dev,git,ca-certificates
serve_timeout=${FRESH_SERVE_TIMEOUT:-2400} # s until /health/ready, deps and build included
stop_timeout=${FRESH_STOP_TIMEOUT:-60}     # s from SIGTERM to the service's exit

die() { echo "test-fresh: $*" >&2; exit 1; }
say() { echo "test-fresh: $*" >&2; }

# ---------------------------------------------------------------------------
# Inside the new root (pid 1 of nothing: the chroot'd shell after pivot_root)
# ---------------------------------------------------------------------------

# The first child of $1 (the service `make serve` exec'd into).
child_of() {
  local f=/proc/$1/task/$1/children c
  [[ -r $f ]] && read -r c _ <"$f" && [[ -n ${c:-} ]] && { echo "$c"; return; }
  for f in /proc/[0-9]*/stat; do
    read -r -a s <"$f" 2>/dev/null || continue
    # pid (comm) state ppid: comm has no spaces here (make, pyexec)
    [[ ${s[3]:-} == "$1" ]] && { echo "${s[0]}"; return; }
  done
  return 1
}

# HTTP status of GET /health/ready, with bash's /dev/tcp (no curl in the root).
ready_status() {
  local line
  { exec 3<>"/dev/tcp/127.0.0.1/$1"; } 2>/dev/null || return 1
  printf 'GET /health/ready HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' >&3
  IFS=' ' read -r -t 5 _ line _ <&3 || line=
  exec 3<&-
  echo "${line:-none}"
}

inside_serve() {
  local port=$1 log=/var/log/fresh-serve.log pid svc t0 code st rc
  t0=$SECONDS
  say "serve: make serve (PORT=$port), waiting up to ${serve_timeout}s for /health/ready"
  # Own session and process group: the SIGTERM below goes to the service only.
  PORT=$port setsid make serve </dev/null >"$log" 2>&1 &
  pid=$!
  code=none
  while ((SECONDS - t0 < serve_timeout)); do
    if ! kill -0 "$pid" 2>/dev/null; then
      wait "$pid" && rc=0 || rc=$?
      tail -n 40 "$log" >&2
      die "serve half FAILED: make serve exited with status $rc before /health/ready answered 200 (log above)"
    fi
    code=$(ready_status "$port") || code=none
    [[ $code == 200 ]] && break
    sleep 2
  done
  if [[ $code != 200 ]]; then
    tail -n 40 "$log" >&2
    kill -KILL -- "-$pid" 2>/dev/null || true
    die "serve half FAILED: /health/ready did not answer 200 within ${serve_timeout}s (last: $code; log above)"
  fi
  say "serve: /health/ready 200 after $((SECONDS - t0))s; SIGTERM to the service"
  svc=$(child_of "$pid") || die "serve half FAILED: no service process under make (pid $pid)"
  st=$(cat "/proc/$svc/comm" 2>/dev/null || echo '?')
  [[ $st == pyexec ]] || die "serve half FAILED: make's child is '$st', not pyexec"
  kill -TERM "$svc"
  t0=$SECONDS
  while kill -0 "$pid" 2>/dev/null && ((SECONDS - t0 < stop_timeout)); do sleep 1; done
  if kill -0 "$pid" 2>/dev/null; then
    tail -n 20 "$log" >&2
    kill -KILL -- "-$pid" 2>/dev/null || true
    die "serve half FAILED: the service did not exit within ${stop_timeout}s of SIGTERM (log above)"
  fi
  wait "$pid" && rc=0 || rc=$?
  if ((rc != 0)); then
    tail -n 20 "$log" >&2
    die "serve half FAILED: after SIGTERM make serve exited with status $rc (log above)"
  fi
  grep -q '"message":"stopped"' "$log" || grep -q '"stopped"' "$log" ||
    die "serve half FAILED: the service exited 0 but never logged \"stopped\""
  say "serve: stopped cleanly in $((SECONDS - t0))s"
}

inside() {
  local mode=$1 port=$2 t0 rc
  cd /src/pyexec
  if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
    update-ca-certificates >/dev/null
  fi
  if [[ $mode != test ]]; then
    t0=$SECONDS
    inside_serve "$port"
    say "serve half passed in $((SECONDS - t0))s"
  fi
  if [[ $mode != serve ]]; then
    t0=$SECONDS
    local sanitized=${FRESH_SANITIZED_TESTS:-tests/e2e/test_smoke.py tests/e2e/test_request_cap.py}
    say "test: CI=true make test ASAN_E2E_TESTS='$sanitized' TSAN_TESTS='$sanitized'"
    CI=true make test ASAN_E2E_TESTS="$sanitized" TSAN_TESTS="$sanitized" </dev/null && rc=0 || rc=$?
    ((rc == 0)) || die "test half FAILED: CI=true make test exited with status $rc after $((SECONDS - t0))s"
    say "test half passed in $((SECONDS - t0))s"
  fi
}

# ---------------------------------------------------------------------------
# In the private mount namespace, before pivot_root
# ---------------------------------------------------------------------------

enter() {
  local run=$1 base=$2 repo=$3 rev=$4 mode=$5 port=$6 r
  r=$run/root
  mount -t overlay overlay -o "lowerdir=$base,upperdir=$run/upper,workdir=$run/work" "$r"
  mount -t proc proc "$r/proc"
  mount --rbind /sys "$r/sys"
  mount --rbind /dev "$r/dev"
  mount -t tmpfs -o nosuid,nodev,mode=1777 tmpfs "$r/dev/shm"
  mount -t tmpfs -o nosuid,nodev,mode=0755 tmpfs "$r/run"
  # The root shares the host's kernel: its cgroups, its uids, its huge-page
  # pool. Every pyexec on it must see the same locks that hand those out
  # (uid slots and box-N cgroups, the hugetlb pool), or a sandbox here and
  # one of another service on the host take the same uid and cgroup.
  mkdir -p -m 0700 /run/pyexec "$r/run/pyexec"
  mount --bind /run/pyexec "$r/run/pyexec"
  mkdir -p "$r/var/cache/apt/archives" "$cache/apt-archives/partial"
  mount --bind "$cache/apt-archives" "$r/var/cache/apt/archives"
  # The network this machine is on, as any machine on it has it: its
  # resolver, and the certificate authorities it adds to Debian's (an HTTPS
  # proxy's), without which the npm registry is out of reach.
  rm -f "$r/etc/resolv.conf"
  cp -L /etc/resolv.conf "$r/etc/resolv.conf"
  # What Debian's installer writes and debootstrap does not: without it
  # "localhost" does not resolve (chromedriver's clients connect to it).
  if [[ ! -e $r/etc/hosts ]]; then
    printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n' \
      >"$r/etc/hosts"
  fi
  if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
    mkdir -p "$r/usr/local/share/ca-certificates"
    cp /usr/local/share/ca-certificates/*.crt "$r/usr/local/share/ca-certificates/"
  fi
  # A clean clone of HEAD: what is committed, nothing of the work tree.
  git clone -q --no-hardlinks "$repo" "$r/src/pyexec"
  git -C "$r/src/pyexec" -c advice.detachedHead=false checkout -q --detach "$rev"
  cd "$r"
  mkdir -p .oldroot
  pivot_root . .oldroot
  umount -l /.oldroot
  rmdir /.oldroot
  # The root is now the namespace's root: CLONE_NEWUSER is allowed.
  exec chroot . /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    HOME=/root TERM=dumb FRESH_SERVE_TIMEOUT="$serve_timeout" FRESH_STOP_TIMEOUT="$stop_timeout" \
    FRESH_SANITIZED_TESTS="${FRESH_SANITIZED_TESTS:-}" \
    /bin/bash /src/pyexec/scripts/test-fresh.sh __inside "$mode" "$port"
}

# ---------------------------------------------------------------------------
# On the host
# ---------------------------------------------------------------------------

# The Debian mirror the host uses (deb.debian.org here).
host_mirror() {
  local m
  m=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null |
    grep -oE 'https?://[^ ]+/debian/?( |$)' | head -n1 | tr -d ' ') || true
  echo "${m:-http://deb.debian.org/debian}"
}

make_base() {
  local base=$1 mirror=$2 stamp=$3 tmp=$1.tmp
  say "making the pristine root (debootstrap --variant=minbase $suite, $mirror)"
  rm -rf --one-file-system "$tmp"
  debootstrap --variant=minbase --include="$include" "$suite" "$tmp" "$mirror" >"$cache/debootstrap.log" 2>&1 ||
    { tail -n 20 "$cache/debootstrap.log" >&2; die "debootstrap failed (log: $cache/debootstrap.log)"; }
  # The suites a Debian 12 installation has, updates and security included.
  local sec=${mirror%/debian*}/debian-security
  printf 'deb %s %s main\ndeb %s %s-updates main\ndeb %s %s-security main\n' \
    "$mirror" "$suite" "$mirror" "$suite" "$sec" "$suite" >"$tmp/etc/apt/sources.list"
  rm -f "$tmp"/var/cache/apt/archives/*.deb
  echo "$stamp" >"$tmp/.pyexec-fresh"
  rm -rf --one-file-system "$base"
  mv "$tmp" "$base"
}

free_port() {
  local p i
  for i in $(seq 50); do
    p=$((20000 + RANDOM % 30000))
    if ! { exec 3<>"/dev/tcp/127.0.0.1/$p"; } 2>/dev/null; then echo "$p"; return; fi
    exec 3<&-
  done
  die "no free port found on 127.0.0.1"
}

main() {
  local mode=${FRESH:-all} repo rev base mirror stamp t0 rc
  while (($#)); do
    case $1 in
    --serve-only) mode=serve ;;
    --test-only) mode=test ;;
    --all) mode=all ;;
    -h | --help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument '$1' (--serve-only, --test-only, --all)" ;;
    esac
    shift
  done
  case $mode in serve | test | all) ;; *) die "FRESH must be serve, test or all, not '$mode'" ;; esac
  [[ $(id -u) -eq 0 ]] || die "needs root (debootstrap, mounts, and make test's root half)"

  repo=$(cd "$(dirname "$0")/.." && pwd)
  rev=$(git -C "$repo" rev-parse HEAD)
  if [[ -n $(git -C "$repo" status --porcelain --untracked-files=no) ]]; then
    say "note: uncommitted changes are not tested (the clone is of HEAD $rev)"
  fi
  for tool in debootstrap unshare pivot_root; do
    command -v "$tool" >/dev/null && continue
    say "installing debootstrap on the host"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null ||
      { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null; }
    break
  done

  mkdir -p "$cache"
  base=$cache/$suite-minbase
  mirror=$(host_mirror)
  stamp="$suite $include $mirror v1"
  t0=$SECONDS
  exec 9>"$cache/lock"
  flock 9
  if [[ ! -f $base/.pyexec-fresh || $(cat "$base/.pyexec-fresh") != "$stamp" ]]; then
    make_base "$base" "$mirror" "$stamp"
    say "pristine root made in $((SECONDS - t0))s"
  fi
  # Shared from here on: other runs may use the same root at once.
  flock -s 9

  run=$(mktemp -d "$cache/run.XXXXXX")
  # The mounts live in the namespace below and go with it; this removes
  # what the run wrote (no mount is visible here, so nothing else).
  trap 'rm -rf --one-file-system "$run"' EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  mkdir "$run/upper" "$run/work" "$run/root"
  say "HEAD $rev, mode $mode, run dir $run"
  t0=$SECONDS
  unshare --mount --propagation private -- "$0" __enter "$run" "$base" "$repo" "$rev" "$mode" "$(free_port)" && rc=0 || rc=$?
  if ((rc != 0)); then
    say "FAILED (mode $mode, status $rc) after $((SECONDS - t0))s"
    exit "$rc"
  fi
  say "passed (mode $mode) in $((SECONDS - t0))s"
}

# One compound command, read whole before it runs: an edit of this file
# during a run does not change what the run executes.
{
  case ${1:-} in
  __inside) shift; inside "$@" ;;
  __enter) shift; enter "$@" ;;
  *) main "$@" ;;
  esac
  exit
}
