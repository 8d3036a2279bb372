#!/usr/bin/env bash
# make test-container: the container image (Dockerfile), built and tested with
# podman, run with exactly the privileges docs/container.md documents.
#
#   scripts/test-container.sh [--base-only | --build-only]
#
# needs: podman for building and running the image
# needs: debootstrap for the base image (no registry is reached)
# needs: uidmap, slirp4netns, fuse-overlayfs for podman (rootless and networking)
# needs: runc for podman on a hybrid cgroup host whose unified hierarchy has a controller
#
# Phases, each printed with its time:
#   base   debian:bookworm-slim made from Debian packages: debootstrap
#          --variant=minbase bookworm, cached under $PYEXEC_CONTAINER_CACHE
#          (/var/cache/pyexec-container), imported as
#          docker.io/library/debian:bookworm-slim so that the Dockerfile's FROM
#          resolves without a registry. A stamp (suite, mirror, version of this
#          recipe) decides when to make it again; it is kept in the root and as
#          a label of the imported image.
#   build  podman build of the Dockerfile (--pull=never; the build's network is
#          the host's, where apt reaches the mirror).
#   run    the image run with the flags of docs/container.md (ROOT_FLAGS
#          below, or UNPRIVILEGED_FLAGS with CONTAINER_MODE=unprivileged;
#          tests/container checks them against the document), port 3002
#          published on a free loopback port; waits for GET /health/ready,
#          then checks that PID 1 is tini, its child pyexec, and that the
#          image's HEALTHCHECK passes.
#   check  `pyexec check` inside the running container: exit 0.
#   tests  tests/container (the image's files, the manifests, the probes) and
#          the smoke and sandbox deny tests of tests/e2e sent to the container
#          (PYEXEC_TEST_URL, PYEXEC_TEST_CONTAINER; the client is the image's
#          own pyexec, copied out); then no zombie may be left under PID 1 or
#          pyexec, orphans of a `podman exec` included.
#   stop   podman stop (SIGTERM): the container exits 0 and logged "stopped".
#
# The container is removed on every exit path.
set -euo pipefail

cache=${PYEXEC_CONTAINER_CACHE:-/var/cache/pyexec-container}
suite=bookworm
base_image=docker.io/library/debian:bookworm-slim
image=${PYEXEC_CONTAINER_IMAGE:-localhost/pyexec:test}
ready_timeout=${CONTAINER_READY_TIMEOUT:-180} # s from podman run to /health/ready
stop_timeout=${CONTAINER_STOP_TIMEOUT:-60}    # s from SIGTERM to the container's exit
recipe=v1 # bump when make_base changes what the root holds
ctr=      # the running container's name, removed on exit

# The flags of docs/container.md, no more: tests/container checks that the
# document and these lists agree. root (the default): pyexec as root in the
# container, a host uid and cgroups per run. unprivileged
# (CONTAINER_MODE=unprivileged): pyexec as uid 1000 building its sandboxes
# in user namespaces, the container without any capability.
# shellcheck disable=SC2054 # the commas are --cap-add's
ROOT_FLAGS=(
  --cap-drop=ALL
  --cap-add=SYS_ADMIN,SETUID,SETGID,SETPCAP,KILL,DAC_OVERRIDE,CHOWN
  --cgroupns=private
  --security-opt=no-new-privileges
  --read-only
  --volume=/run/pyexec:/run/pyexec
)
UNPRIVILEGED_FLAGS=(
  --user=1000:1000
  --cap-drop=ALL
  --security-opt=seccomp=SECCOMP_USERNS
  --security-opt=unmask=/proc/*
  --security-opt=no-new-privileges
  --read-only
)

die() { echo "test-container: $*" >&2; exit 1; }
say() { echo "test-container: $*" >&2; }

phase_t0=0
phase() { phase_t0=$SECONDS; say "$1 ..."; }
done_phase() { say "$1: done in $((SECONDS - phase_t0))s"; }

# The Debian mirror the host uses (deb.debian.org here), as test-fresh.sh finds it.
host_mirror() {
  local m
  m=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null |
    grep -oE 'https?://[^ ]+/debian/?( |$)' | head -n1 | tr -d ' ') || true
  echo "${m:-http://deb.debian.org/debian}"
}

install_missing() {
  local missing=() tool
  for tool in podman:podman debootstrap:debootstrap newuidmap:uidmap slirp4netns:slirp4netns \
    fuse-overlayfs:fuse-overlayfs; do
    command -v "${tool%%:*}" >/dev/null || missing+=("${tool#*:}")
  done
  ((${#missing[@]})) || return 0
  say "installing ${missing[*]}"
  for _ in 1 2; do
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null && return 0
    apt-get update -qq
  done
  die "could not install ${missing[*]}"
}

# The root of debian:bookworm-slim's package set (minbase: Essential and
# required, apt), with the suites a Debian 12 image has.
make_base() {
  local root=$1 mirror=$2 stamp=$3 tmp=$1.tmp sec
  rm -rf --one-file-system "$tmp"
  debootstrap --variant=minbase "$suite" "$tmp" "$mirror" >"$cache/debootstrap.log" 2>&1 ||
    { tail -n 20 "$cache/debootstrap.log" >&2; die "debootstrap failed (log: $cache/debootstrap.log)"; }
  sec=${mirror%/debian*}/debian-security
  rm -f "$tmp/etc/apt/sources.list"
  cat >"$tmp/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $mirror
Suites: $suite $suite-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $sec
Suites: $suite-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
  # What the official slim image leaves out: package lists, downloaded
  # .debs, documentation, logs.
  rm -rf "$tmp"/var/lib/apt/lists/* "$tmp"/var/cache/apt/*.bin "$tmp"/var/cache/apt/archives/*.deb \
    "$tmp"/usr/share/doc/* "$tmp"/usr/share/man/* "$tmp"/usr/share/info/* "$tmp"/var/log/*.log
  : >"$tmp/etc/resolv.conf"
  echo "$stamp" >"$tmp/.pyexec-container-base"
  rm -rf --one-file-system "$root"
  mv "$tmp" "$root"
}

base() {
  local root=$cache/$suite-minbase mirror stamp have
  mirror=$(host_mirror)
  stamp="$suite minbase $mirror $recipe"
  mkdir -p "$cache"
  exec 9>"$cache/lock"
  flock 9
  if [[ ! -f $root/.pyexec-container-base || $(cat "$root/.pyexec-container-base") != "$stamp" ]]; then
    say "base: debootstrap --variant=minbase $suite ($mirror) into $root"
    make_base "$root" "$mirror" "$stamp"
  fi
  have=$(podman image inspect --format '{{index .Config.Labels "org.pyexec.base"}}' "$base_image" 2>/dev/null) || have=
  if [[ $have != "$stamp" ]]; then
    say "base: importing $root as $base_image"
    tar -C "$root" --exclude=./.pyexec-container-base -c . |
      podman import -q --change "LABEL org.pyexec.base=\"$stamp\"" --change 'CMD ["/bin/bash"]' \
        - "$base_image" >/dev/null
  else
    say "base: $base_image is up to date ($stamp)"
  fi
  flock -u 9
}

build() {
  local repo=$1
  podman build --pull=never --network=host --format docker -t "$image" -f "$repo/Dockerfile" "$repo" \
    >"$cache/build.log" 2>&1 || { tail -n 40 "$cache/build.log" >&2; die "podman build failed (log: $cache/build.log)"; }
  say "build: $image, $(podman image inspect --format '{{.Size}}' "$image" | numfmt --to=iec) (log: $cache/build.log)"
  # Each build leaves the previous image and its build stage untagged: the
  # layer cache of the next build. Those older than a day go.
  podman image prune -f --filter until=24h >/dev/null
}

# Two properties of a host that podman's defaults trip over, worked around
# for this script only (they are not privileges of the container):
# - crun refuses a hybrid cgroup host whose unified hierarchy holds a
#   controller ("cgroups in hybrid mode not supported"): hugetlb is there
#   when no v1 hierarchy mounts it. runc runs such hosts.
# - without CAP_SYS_RESOURCE (a root that is itself confined) the runtime
#   cannot give the container podman's default rlimits (nofile 1048576):
#   the container gets this shell's limits (nproc capped at conmon's own).
podman_conf() {
  local conf=$cache/containers.conf ctl='' capeff nofile nproc
  : >"$conf"
  [[ -r /sys/fs/cgroup/unified/cgroup.controllers ]] && ctl=$(tr -d ' \n' </sys/fs/cgroup/unified/cgroup.controllers)
  capeff=$(awk '/^CapEff:/ { print $2 }' /proc/self/status)
  if (((0x$capeff >> 24 & 1) == 0)); then
    nofile=$(ulimit -Hn)
    nproc=$(ulimit -Hu)
    [[ $nproc == unlimited ]] || ((nproc > 32768)) && nproc=32768
    printf '[containers]\ndefault_ulimits = ["nofile=%s:%s", "nproc=%s:%s"]\n' "$nofile" "$nofile" "$nproc" "$nproc" >>"$conf"
    say "podman: no CAP_SYS_RESOURCE here: containers get nofile=$nofile, nproc=$nproc"
  fi
  if [[ -n $ctl ]]; then
    command -v runc >/dev/null || { DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends runc >/dev/null ||
      die "could not install runc"; }
    printf '[engine]\nruntime = "runc"\n' >>"$conf"
    say "podman: hybrid cgroups with '$ctl' on the unified hierarchy: runtime runc (crun refuses such hosts)"
  fi
  export CONTAINERS_CONF=$conf
}

free_port() {
  local p
  for _ in $(seq 50); do
    p=$((20000 + RANDOM % 30000))
    if ! { exec 3<>"/dev/tcp/127.0.0.1/$p"; } 2>/dev/null; then echo "$p"; return; fi
    exec 3<&-
  done
  die "no free port found on 127.0.0.1"
}

# Configuration, not privileges: the tests ask for limits up to the ranges
# of `pyexec run` (the service's default maxima are lower) and send more
# requests than the default rate limit lets through.
TEST_ENV=(
  --env=EXECUTION_TIMEOUT=600000
  --env=MEMORY_LIMIT=4096
  --env=MAX_OUTPUT_LENGTH=67108864
  --env=RATE_LIMIT_MAX=0
)

# The seccomp profile of the unprivileged mode: podman's default with
# sethostname(2) and setns(2) allowed without CAP_SYS_ADMIN (the sandbox
# sets its hostname and joins its namespaces inside its own user namespace;
# the default allows them only to a container holding CAP_SYS_ADMIN).
seccomp_userns() {
  local out=$cache/seccomp-userns.json
  /usr/bin/python3 - /usr/share/containers/seccomp.json "$out" <<'PY'
import json, sys
profile = json.load(open(sys.argv[1]))
wanted = {"sethostname", "setns"}
rules = []
for rule in profile["syscalls"]:
    names = set(rule["names"])
    gated_on = rule.get("includes", {}).get("caps") == ["CAP_SYS_ADMIN"]
    refused_without = rule["action"] == "SCMP_ACT_ERRNO" and rule.get("excludes", {}).get("caps") == ["CAP_SYS_ADMIN"]
    if names & wanted and refused_without:
        rule = dict(rule, names=sorted(names - wanted))
    elif names & wanted and gated_on:
        rules.append({"names": sorted(names & wanted), "action": "SCMP_ACT_ALLOW"})
    if rule["names"]:
        rules.append(rule)
profile["syscalls"] = rules
json.dump(profile, open(sys.argv[2], "w"), indent=1)
PY
  echo "$out"
}

# HTTP status of GET $2 on 127.0.0.1:$1, with bash's /dev/tcp.
http_status() {
  local line
  { exec 3<>"/dev/tcp/127.0.0.1/$1"; } 2>/dev/null || return 1
  printf 'GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' "$2" >&3
  IFS=' ' read -r -t 5 _ line _ <&3 || line=
  exec 3<&-
  echo "${line:-none}"
}

# shellcheck disable=SC2317 # run by the EXIT trap
cleanup() {
  if [[ -n $ctr ]]; then
    podman rm -f -t 0 "$ctr" >/dev/null 2>&1 || true
  fi
  [[ -n ${client_dir:-} ]] && rm -rf "$client_dir"
  [[ -n ${srv_dir:-} ]] && rm -rf "$srv_dir"
  return 0
}

# Zombies among the children of $1, seen from the host.
zombies_of() {
  local pid=$1 n=0 c st
  # shellcheck disable=SC2013 # the files hold pids separated by spaces
  for c in $(cat /proc/"$pid"/task/*/children 2>/dev/null); do
    st=$(awk '{ print $3 }' "/proc/$c/stat" 2>/dev/null) || continue
    [[ $st == Z ]] && n=$((n + 1))
  done
  echo "$n"
}

main() {
  local mode=all repo t_all port code url pid1 svc flags=() n
  local cmode=${CONTAINER_MODE:-root}
  while (($#)); do
    case $1 in
    --base-only) mode=base ;;
    --build-only) mode=build ;;
    -h | --help) sed -n '2,36p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument '$1' (--base-only, --build-only)" ;;
    esac
    shift
  done
  [[ $(id -u) -eq 0 ]] || die "needs root (debootstrap, and the container runs as root under rootful podman)"
  repo=$(cd "$(dirname "$0")/.." && pwd)
  t_all=$SECONDS
  trap cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM

  phase deps; install_missing; done_phase deps
  mkdir -p "$cache"
  podman_conf
  phase base; base; done_phase base
  [[ $mode == base ]] && return 0
  phase build; build "$repo"; done_phase build
  [[ $mode == build ]] && return 0

  phase run
  case $cmode in
  root)
    flags=("${ROOT_FLAGS[@]}")
    [[ -d /run/pyexec ]] || mkdir -m 0700 /run/pyexec
    ;;
  unprivileged) flags=("${UNPRIVILEGED_FLAGS[@]/SECCOMP_USERNS/$(seccomp_userns)}") ;;
  *) die "CONTAINER_MODE must be root or unprivileged, not '$cmode'" ;;
  esac
  say "run: $cmode: podman run ${flags[*]}"
  # The jobs' directories, shared with the host (a volume, not a privilege).
  srv_dir=$(mktemp -d "$cache/srv.XXXXXX")
  mkdir "$srv_dir"/{templates,uploads,composed,renders}
  [[ $cmode == root ]] || chown -R 1000:1000 "$srv_dir"
  port=$(free_port)
  ctr=pyexec-test-$$
  # podman runs health checks from systemd timers, and says so on stderr
  # where there is no systemd; the check is run by hand below.
  podman run -d --name "$ctr" "${flags[@]}" "${TEST_ENV[@]}" --volume="$srv_dir:/srv/pyexec" -p "127.0.0.1:$port:3002" "$image" 2>"$cache/run.err" >/dev/null ||
    { cat "$cache/run.err" >&2; die "podman run failed"; }
  url=http://127.0.0.1:$port
  code=none
  while ((SECONDS - phase_t0 < ready_timeout)); do
    [[ $(podman inspect --format '{{.State.Running}}' "$ctr") == true ]] ||
      { podman logs "$ctr" 2>&1 | tail -n 30 >&2; die "run: the container exited before /health/ready answered 200 (log above)"; }
    code=$(http_status "$port" /health/ready) || code=none
    [[ $code == 200 ]] && break
    sleep 1
  done
  [[ $code == 200 ]] ||
    { podman logs "$ctr" 2>&1 | tail -n 30 >&2; die "run: /health/ready did not answer 200 within ${ready_timeout}s (last: $code)"; }
  pid1=$(podman inspect --format '{{.State.Pid}}' "$ctr")
  [[ $(cat "/proc/$pid1/comm") == tini ]] || die "run: the container's PID 1 is $(cat "/proc/$pid1/comm"), not tini"
  svc=$(cat "/proc/$pid1/task/$pid1/children")
  svc=${svc%% *}
  [[ -n $svc && $(cat "/proc/$svc/comm") == pyexec ]] || die "run: tini's child is not pyexec"
  podman healthcheck run "$ctr" >/dev/null 2>&1 || die "run: the image's HEALTHCHECK failed on a ready service"
  say "run: $url ready; PID 1 is tini (host pid $pid1), its child pyexec (host pid $svc); HEALTHCHECK healthy"
  done_phase run

  phase check
  podman exec "$ctr" pyexec check >"$cache/check.txt" 2>&1 ||
    { cat "$cache/check.txt" >&2; die "check: pyexec check in the container failed"; }
  sed 's/^/  /' "$cache/check.txt" >&2
  done_phase check

  phase tests
  # The client is the image's own pyexec (`pyexec run --service`).
  client_dir=$(mktemp -d)
  podman cp "$ctr:/usr/local/bin/pyexec" "$client_dir/pyexec"
  # Deselected: this test expects kill(-1) to find nothing beside the
  # program, which holds on the cold path only; a warm sandbox also holds
  # its holder process (src/sandbox/supervise.c), on any host.
  say "tests: deselected test_host_processes_are_invisible_and_unreachable (cold path only: kill(-1) reaches a warm sandbox's holder)"
  # shellcheck disable=SC2086 # CONTAINER_PYTEST_ARGS: words for pytest
  (cd "$repo" && PYEXEC_BIN=$client_dir/pyexec PYEXEC_TEST_URL=$url PYEXEC_TEST_CONTAINER=$ctr PYEXEC_TEST_SRV=$srv_dir CONTAINER_MODE=$cmode \
    /usr/bin/python3 -m pytest -q -p no:cacheprovider -rs tests/container \
    tests/e2e/test_smoke.py tests/e2e/test_deny.py tests/e2e/test_kernel_tables.py::test_flow_label_denied_cli \
    --deselect tests/e2e/test_deny.py::test_host_processes_are_invisible_and_unreachable \
    ${CONTAINER_PYTEST_ARGS:-}) ||
    die "tests: failed against the container ($url, $cmode)"
  # Orphans an exec session leaves are PID 1's to reap.
  podman exec "$ctr" sh -c '(sleep 0.2 &) ; (sleep 0.2 &)'
  sleep 1
  n=$(($(zombies_of "$pid1") + $(zombies_of "$svc")))
  ((n == 0)) || die "tests: $n zombie children of the container's PID 1 or of pyexec after the tests"
  say "tests: no zombie child of PID 1 or of pyexec, orphans of podman exec included"
  done_phase tests

  phase stop
  podman stop -t "$stop_timeout" "$ctr" >/dev/null
  code=$(podman inspect --format '{{.State.ExitCode}}' "$ctr")
  ((code == 0)) || { podman logs "$ctr" 2>&1 | tail -n 20 >&2; die "stop: the container exited $code after SIGTERM (log above)"; }
  podman logs "$ctr" 2>&1 | grep -q '"message":"stopped"' ||
    die "stop: the container exited 0 but the service never logged \"stopped\""
  done_phase stop
  say "passed in $((SECONDS - t_all))s"
}

# One compound command, read whole before it runs: an edit of this file
# during a run does not change what the run executes.
{
  main "$@"
  exit
}
