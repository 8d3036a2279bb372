#!/usr/bin/env bash
# needs: qemu-system-x86 qemu-utils debootstrap e2fsprogs
#
# make test-vm: pyexec on a pure cgroup v2 Debian 12 guest booted with
# Debian's own kernel, under systemd, as users run it. The host's kernel and
# its hybrid cgroups run every other test; this one runs the v2 path.
#
#   scripts/test-vm.sh
#
# Environment:
#   PYEXEC_VM_CACHE  the cached image (default /var/cache/pyexec-vm)
#   VM_ACCEL         kvm | tcg: force the accelerator (default: KVM when a
#                    guest boots under it within VM_KVM_PROBE seconds, else TCG)
#   VM_KVM_PROBE     seconds a KVM guest has to reach its test unit (60), once
#                    its kernel printed its banner (within 20 s)
#   VM_TIMEOUT       seconds the guest has for everything (default 3600)
#   VM_TESTS         the e2e test files to run (default: all under KVM; the
#                    cgroup, limit, warm-path and service files under TCG)
#   VM_MEMORY        guest memory in MiB (4096)
#
# The image is made once and cached outside the repository: debootstrap of
# bookworm with linux-image-amd64, systemd and the packages building and
# testing need, turned into a raw ext4 image by mkfs.ext4 -d (no loop
# mount), with the kernel and initrd beside it for a direct boot. A stamp
# (package list, mirror, script version) decides when to make it again.
#
# Each run boots a throwaway qcow2 overlay of it. A clean clone of HEAD goes
# in over 9p (tag "host"), and the results come back the same way. A unit
# baked into the image (pyexec-vm.service) runs this script's guest half
# from the clone, which builds pyexec, runs the suites each in a systemd
# unit with Delegate=yes, writes the results and powers the guest off.
set -euo pipefail

version=4 # of the image's recipe: bump when make_image changes
cache=${PYEXEC_VM_CACHE:-/var/cache/pyexec-vm}
suite=bookworm
# The guest's packages: the kernel and init, then scripts/deps.sh's build and
# test lists (blender left out: no test here renders).
packages=(
  linux-image-amd64 systemd systemd-sysv udev dbus kmod
  gcc make pkg-config meson ninja-build libseccomp-dev libjansson-dev libmicrohttpd-dev libyaml-dev
  libhiredis-dev libcurl4-openssl-dev libssl-dev
  libpython3.11-dev python3.11-dev scdoc libcmocka-dev python3 python3-pytest python3-pil
  python3-numpy python3-matplotlib python3-pandas
  python3-prometheus-client python3-markdown-it iproute2 util-linux passwd curl libsystemd-dev git
  ca-certificates
)
kvm_probe=${VM_KVM_PROBE:-60}
vm_timeout=${VM_TIMEOUT:-3600}
vm_memory=${VM_MEMORY:-4096}
# The e2e files that drive cgroups, limits, the warm path (zygote) and the
# service: what TCG, several times slower than KVM, has time for.
tcg_tests="tests/e2e/test_cgroup_v2.py tests/e2e/test_smoke.py tests/e2e/test_warm.py tests/e2e/test_hugetlb_bounds.py"
marker="pyexec-vm: guest unit started"

die() { echo "test-vm: $*" >&2; exit 1; }
say() { echo "test-vm: $*" >&2; }
phase() { say "$1 ... $2s"; }

# ---------------------------------------------------------------------------
# The guest half (run by pyexec-vm.service, as root, from the clone on 9p)
# ---------------------------------------------------------------------------

out=/mnt/host/out
src=/root/pyexec

# Record one suite's result: name status seconds passed failed skipped.
record() { echo "$*" >>"$out/results"; }

# Counts from pytest's last line ("3 failed, 10 passed, 2 skipped in 4.0s").
pytest_counts() {
  local line p f s e
  line=$(grep -E '(passed|failed|skipped|error|no tests ran)' "$1" | grep -E ' in [0-9.]+s' | tail -n1) || line=
  p=$(grep -oE '[0-9]+ passed' <<<"$line" | grep -oE '[0-9]+') || p=0
  f=$(grep -oE '[0-9]+ failed' <<<"$line" | grep -oE '[0-9]+') || f=0
  e=$(grep -oE '[0-9]+ errors?' <<<"$line" | grep -oE '[0-9]+') || e=0
  s=$(grep -oE '[0-9]+ skipped' <<<"$line" | grep -oE '[0-9]+') || s=0
  echo "${p:-0} $((${f:-0} + ${e:-0})) ${s:-0}"
}

# Run a command as a transient system service with its own delegated
# cgroup, as pyexec.service runs the service: output to the log, status back.
delegated() {
  local unit=$1 log=$2
  shift 2
  systemd-run --quiet --wait --pipe --collect --unit="$unit" -p Delegate=yes \
    -p WorkingDirectory="$src" "$@" </dev/null >"$log" 2>&1
}

guest_suite() { # name log command...: run, time and record one suite
  local name=$1 log=$2 t0 rc counts
  shift 2
  t0=$SECONDS
  "$@" && rc=0 || rc=$?
  counts=$(pytest_counts "$log")
  record "$name $rc $((SECONDS - t0)) $counts"
  say "$name: exit $rc in $((SECONDS - t0))s (passed failed skipped: $counts)"
  tail -n 15 "$log" >&2 || true
}

guest() {
  local t0 rc tests fstype own
  exec > >(tee -a "$out/guest.log") 2>&1
  echo "$marker"
  awk '{print int($1)}' /proc/uptime >"$out/boot"
  say "guest: kernel $(uname -r), $(nproc) CPUs, systemd $(systemctl --version | head -n1)"
  fstype=$(stat -fc %T /sys/fs/cgroup)
  echo "$fstype" >"$out/cgroupfs"
  if [[ $fstype != cgroup2fs ]]; then
    record "cgroup2 1 0 0 1 0"
    die "guest: /sys/fs/cgroup is $fstype, not cgroup2fs: not a pure cgroup v2 host"
  fi
  record "cgroup2 0 0 1 0 0"

  t0=$SECONDS
  rm -rf "$src"
  cp -a /mnt/host/src "$src"
  cd "$src"
  { meson setup build -Dwerror=true && ninja -C build; } >"$out/build.log" 2>&1 && rc=0 || rc=$?
  record "build $rc $((SECONDS - t0)) 0 0 0"
  phase "guest: build (exit $rc)" $((SECONDS - t0))
  if ((rc != 0)); then
    tail -n 40 "$out/build.log"
    return 1
  fi
  # pyexec-runner and pyexec-init where a deployment has them.
  install -D -m 0755 build/pyexec-runner /usr/local/libexec/pyexec/pyexec-runner
  [[ ! -e build/pyexec-init ]] || install -D -m 0755 build/pyexec-init /usr/local/libexec/pyexec/pyexec-init

  # What the service sees, in a delegated unit of its own.
  delegated pyexec-vm-check "$out/check.txt" build/pyexec check || true

  t0=$SECONDS
  meson test -C build --suite unit --print-errorlogs >"$out/unit.log" 2>&1 && rc=0 || rc=$?
  local ok fail skip
  ok=$(grep -oE '^Ok: +[0-9]+' "$out/unit.log" | grep -oE '[0-9]+') || ok=0
  fail=$(grep -oE '^Fail: +[0-9]+' "$out/unit.log" | grep -oE '[0-9]+') || fail=0
  skip=$(grep -oE '^Skipped: +[0-9]+' "$out/unit.log" | grep -oE '[0-9]+') || skip=0
  cp build/meson-logs/testlog.txt "$out/unit-testlog.txt" 2>/dev/null || true
  record "unit $rc $((SECONDS - t0)) $ok $fail $skip"
  phase "guest: unit suite (exit $rc; ok $ok, fail $fail, skipped $skip)" $((SECONDS - t0))
  ((rc == 0)) || tail -n 40 "$out/unit.log"

  tests=$(cat /mnt/host/env/tests)
  say "guest: e2e files: $tests"
  # The suite's processes live in a delegated cgroup, as the service's do
  # under pyexec.service. The unit's main process moves itself into a leaf
  # (systemd's delegation rules: no processes beside enabled controllers),
  # which leaves the unit's cgroup to pyexec.
  guest_suite e2e "$out/e2e.log" delegated pyexec-vm-e2e "$out/e2e.log" \
    -E E2E_TESTS="$tests" bash scripts/test-vm.sh __leaf scripts/test-e2e.sh build/pyexec -rfEs --junitxml="$out/e2e.xml"

  # An unprivileged user as an operator runs it: a system service with
  # User= and Delegate=yes (systemd chowns the unit's cgroup to the user).
  id pyexec-test >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin pyexec-test
  guest_suite unprivileged "$out/unprivileged.log" guest_unprivileged "$tests"

  if [[ -e tests/e2e/test_systemd.py ]]; then
    guest_suite systemd "$out/systemd.log" guest_systemd
  fi

  # Nothing of pyexec left in the cgroup tree once its units have stopped:
  # no run's cgroup (box-N, run-PID-N, warm-PID-N, the unit tests'), no
  # leaf of a delegated unit. <cgroup2 mount>/pyexec itself, the parent
  # root uses outside a delegated unit (the unit suite), stays by design.
  find /sys/fs/cgroup -mindepth 1 -type d \( -name 'box-*' -o -name 'run-[0-9]*-[0-9]*' -o -name 'warm-[0-9]*-[0-9]*' \
    -o -name 'unit-[0-9]*' -o -name 'pyexec-unit-*' -o -name 'pyexec-v2-*' -o -name supervisor -o -name harness \) \
    >"$out/leftover-cgroups" 2>/dev/null || true
  if [[ -s $out/leftover-cgroups ]]; then
    record "leftover 1 0 0 $(wc -l <"$out/leftover-cgroups") 0"
    say "guest: cgroups left behind:"
    cat "$out/leftover-cgroups"
  else
    record "leftover 0 0 1 0 0"
  fi
}

# The unprivileged suite: scripts/test-unprivileged.sh's copy of the build
# and tests, then pytest as pyexec-test in a delegated service of its own.
guest_unprivileged() {
  local tests=$1 work rc
  work=$(mktemp -d /tmp/pyexec-unpriv.XXXXXX)
  chmod 755 "$work"
  mkdir -p "$work/build" "$work/tests"
  cp build/pyexec build/pyexec-runner "$work/build/"
  [[ ! -e build/pyexec-init ]] || cp build/pyexec-init "$work/build/"
  cp -r tests/e2e "$work/tests/e2e"
  cp -r jobs scripts "$work/"
  cp meson.build "$work/meson.build"
  cp -r src "$work/src"
  mkdir -p "$work/docs" && cp docs/openapi.json "$work/docs/openapi.json"
  chmod -R a+rX "$work"
  install -d -o pyexec-test "$work/out"
  # shellcheck disable=SC2086
  systemd-run --quiet --wait --pipe --collect --unit=pyexec-vm-unpriv -p Delegate=yes -p User=pyexec-test \
    -p WorkingDirectory="$work" -E HOME="$work" -E PYEXEC_BIN="$work/build/pyexec" \
    -E PYEXEC_RUNNER="$work/build/pyexec-runner" \
    bash scripts/test-vm.sh __leaf /usr/bin/python3 -m pytest -q -p no:cacheprovider -rfEs \
    --junitxml="$work/out/unprivileged.xml" $tests \
    </dev/null >"$out/unprivileged.log" 2>&1 && rc=0 || rc=$?
  cp "$work/out/unprivileged.xml" "$out/" 2>/dev/null || true
  rm -rf "$work"
  return "$rc"
}

# tests/e2e/test_systemd.py as root: it installs pyexec and drives the real
# pyexec.service.
guest_systemd() {
  PYEXEC_BIN="$src/build/pyexec" /usr/bin/python3 -m pytest -q -p no:cacheprovider -rfEs \
    --junitxml="$out/systemd.xml" tests/e2e/test_systemd.py </dev/null >"$out/systemd.log" 2>&1
}

# Move this process into a leaf of its own cgroup, then exec the command:
# what the main process of a delegated unit does before a program in it
# enables controllers there.
leaf() {
  local own
  own=$(sed -n 's/^0:://p' /proc/self/cgroup)
  mkdir -p "/sys/fs/cgroup$own/harness"
  echo $$ >"/sys/fs/cgroup$own/harness/cgroup.procs"
  exec "$@"
}

# ---------------------------------------------------------------------------
# The host half
# ---------------------------------------------------------------------------

# The Debian mirror the host uses (deb.debian.org here), as test-fresh.sh finds it.
host_mirror() {
  local m
  m=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null |
    grep -oE 'https?://[^ ]+/debian/?( |$)' | head -n1 | tr -d ' ') || true
  echo "${m:-http://deb.debian.org/debian}"
}

install_host_tools() {
  local need=() t
  for t in qemu-system-x86_64:qemu-system-x86 qemu-img:qemu-utils debootstrap:debootstrap mkfs.ext4:e2fsprogs; do
    command -v "${t%%:*}" >/dev/null || need+=("${t#*:}")
  done
  ((${#need[@]} == 0)) && return
  say "installing on the host: ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null ||
    { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null; }
}

make_image() {
  local mirror=$1 stamp=$2 root=$cache/root t0 kver list
  t0=$SECONDS
  rm -rf --one-file-system "$root" "$cache/image.raw.tmp"
  mkdir -p "$cache/debs"
  list=$(
    IFS=,
    echo "${packages[*]}"
  )
  say "image: debootstrap --variant=minbase $suite ($mirror)"
  debootstrap --variant=minbase --cache-dir="$cache/debs" --include="$list" "$suite" "$root" "$mirror" \
    >"$cache/debootstrap.log" 2>&1 ||
    { tail -n 20 "$cache/debootstrap.log" >&2; die "debootstrap failed (log: $cache/debootstrap.log)"; }
  phase "image: debootstrap" $((SECONDS - t0))
  t0=$SECONDS
  local sec=${mirror%/debian*}/debian-security
  printf 'deb %s %s main\ndeb %s %s-updates main\ndeb %s %s-security main\n' \
    "$mirror" "$suite" "$mirror" "$suite" "$sec" "$suite" >"$root/etc/apt/sources.list"
  echo pyexec-vm >"$root/etc/hostname"
  printf '127.0.0.1 localhost\n127.0.1.1 pyexec-vm\n::1 localhost\n' >"$root/etc/hosts"
  printf '/dev/vda / ext4 defaults 0 1\n' >"$root/etc/fstab"
  # A machine id of its own: an empty one makes the first boot prompt
  # (systemd-firstboot) on the console.
  tr -d - </proc/sys/kernel/random/uuid >"$root/etc/machine-id"
  ln -sf /lib/systemd/system/multi-user.target "$root/etc/systemd/system/default.target"
  cat >"$root/etc/systemd/system/pyexec-vm.service" <<'EOF'
[Unit]
Description=pyexec VM test (scripts/test-vm.sh, guest half)
After=local-fs.target
SuccessAction=poweroff-force
FailureAction=poweroff-force
[Service]
Type=oneshot
ExecStart=/bin/sh -c 'modprobe 9pnet_virtio; mkdir -p /mnt/host && mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 host /mnt/host && exec /bin/bash /mnt/host/src/scripts/test-vm.sh __guest'
ExecStopPost=/bin/sync
StandardOutput=journal+console
StandardError=journal+console
TimeoutStartSec=infinity
[Install]
WantedBy=multi-user.target
EOF
  mkdir -p "$root/etc/systemd/system/multi-user.target.wants"
  ln -sf ../pyexec-vm.service "$root/etc/systemd/system/multi-user.target.wants/pyexec-vm.service"
  rm -f "$root"/var/cache/apt/archives/*.deb
  kver=$(basename "$(ls -d "$root"/lib/modules/* | head -n1)")
  # virtio_blk and virtio_pci must reach the initrd, else no /dev/vda.
  local m mods
  mods=$( (zcat -f "$root/boot/initrd.img-$kver" 2>/dev/null || true) | cpio -it 2>/dev/null || true)
  [[ -n $mods ]] || mods=$(chroot "$root" lsinitramfs "/boot/initrd.img-$kver" 2>/dev/null) || true
  for m in virtio_blk virtio_pci; do
    grep -q "/$m.ko" <<<"$mods" || grep -q "/$m.ko" "$root/lib/modules/$kver/modules.builtin" ||
      die "image: the initrd of $kver has no $m (and the kernel has it not built in)"
  done
  cp "$root/boot/vmlinuz-$kver" "$cache/vmlinuz.tmp"
  cp "$root/boot/initrd.img-$kver" "$cache/initrd.img.tmp"
  rm -f "$cache/image.raw.tmp"
  truncate -s 16G "$cache/image.raw.tmp"
  mkfs.ext4 -q -F -L pyexec-vm -d "$root" "$cache/image.raw.tmp"
  mv "$cache/vmlinuz.tmp" "$cache/vmlinuz"
  mv "$cache/initrd.img.tmp" "$cache/initrd.img"
  mv "$cache/image.raw.tmp" "$cache/image.raw"
  rm -rf --one-file-system "$root"
  echo "$stamp" >"$cache/stamp"
  phase "image: configure and mkfs.ext4 -d (kernel $kver)" $((SECONDS - t0))
}

qemu_pid=
run=

cleanup() {
  if [[ -n $qemu_pid ]] && kill -0 "$qemu_pid" 2>/dev/null; then
    kill -KILL "$qemu_pid" 2>/dev/null || true
    wait "$qemu_pid" 2>/dev/null || true
  fi
  [[ -z $run ]] || rm -rf --one-file-system "$run"
}

# Start qemu in the background on accelerator $1; serial console to $2.
start_qemu() {
  local accel=$1 log=$2 opt
  rm -f "$run/overlay.qcow2"
  qemu-img create -q -f qcow2 -b "$cache/image.raw" -F raw "$run/overlay.qcow2"
  case $accel in
  kvm) opt=(-accel kvm -cpu host) ;;
  tcg) opt=(-accel tcg,thread=multi -cpu max) ;;
  esac
  qemu-system-x86_64 "${opt[@]}" -m "$vm_memory" -smp 2 -nographic -no-reboot -nodefaults \
    -kernel "$cache/vmlinuz" -initrd "$cache/initrd.img" \
    -append "root=/dev/vda rw console=ttyS0 panic=-1 systemd.firstboot=off systemd.show_status=false" \
    -drive "file=$run/overlay.qcow2,if=virtio,format=qcow2,cache=unsafe" \
    -virtfs "local,path=$run/share,mount_tag=host,security_model=none" \
    -serial "file:$log" -monitor none -device virtio-rng-pci </dev/null >"$run/qemu.out" 2>&1 &
  qemu_pid=$!
}

# Wait until the serial log shows $3 (default: the marker) (0), qemu exits
# (1) or $2 s pass (2).
wait_marker() {
  local log=$1 limit=$2 text=${3:-$marker} t0=$SECONDS
  while ((SECONDS - t0 < limit)); do
    grep -qa "$text" "$log" 2>/dev/null && return 0
    kill -0 "$qemu_pid" 2>/dev/null || return 1
    sleep 1
  done
  return 2
}

main() {
  local repo rev mirror stamp t0 t_all accel why log rc tests fail=0
  [[ $(id -u) -eq 0 ]] || die "needs root (debootstrap, the image's file ownership)"
  t_all=$SECONDS
  repo=$(cd "$(dirname "$0")/.." && pwd)
  rev=$(git -C "$repo" rev-parse HEAD)
  if [[ -n $(git -C "$repo" status --porcelain --untracked-files=no) ]]; then
    say "note: uncommitted changes are not tested (the clone is of HEAD $rev)"
  fi
  install_host_tools
  mkdir -p "$cache"
  mirror=$(host_mirror)
  stamp="v$version $suite $mirror ${packages[*]}"
  exec 9>"$cache/lock"
  flock 9
  t0=$SECONDS
  if [[ ! -f $cache/stamp || $(cat "$cache/stamp") != "$stamp" || ! -f $cache/image.raw ]]; then
    make_image "$mirror" "$stamp"
  fi
  phase "image ($cache)" $((SECONDS - t0))
  flock -s 9

  run=$(mktemp -d "$cache/run.XXXXXX")
  trap cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  t0=$SECONDS
  mkdir -p "$run/share/out" "$run/share/env"
  git clone -q --no-hardlinks "$repo" "$run/share/src"
  git -C "$run/share/src" -c advice.detachedHead=false checkout -q --detach "$rev"
  phase "clone of HEAD $rev" $((SECONDS - t0))

  # The accelerator: KVM if a guest boots under it, else TCG.
  log=$run/serial.log
  case ${VM_ACCEL:-} in
  kvm | tcg) accel=$VM_ACCEL why="VM_ACCEL=$VM_ACCEL" ;;
  '') accel= ;;
  *) die "VM_ACCEL must be kvm or tcg, not '$VM_ACCEL'" ;;
  esac
  if [[ -z $accel ]]; then
    if [[ -r /dev/kvm && -w /dev/kvm ]]; then accel=kvm-probe; else accel=tcg why="no usable /dev/kvm"; fi
  fi
  if [[ $accel == tcg ]]; then tests=${VM_TESTS:-$tcg_tests}; else tests=${VM_TESTS:-"tests/e2e tests/jobs"}; fi
  echo "$tests" >"$run/share/env/tests"

  t0=$SECONDS
  if [[ $accel == kvm-probe ]]; then
    start_qemu kvm "$log"
    # The kernel's first line comes within a second under KVM; a guest
    # that hangs does so before it.
    wait_marker "$log" 20 "Linux version" && rc=0 || rc=$?
    ((rc != 0)) || { wait_marker "$log" "$kvm_probe" && rc=0 || rc=$?; }
    if ((rc == 0)); then
      accel=kvm why="a KVM guest reached its test unit in $((SECONDS - t0))s"
    else
      kill -KILL "$qemu_pid" 2>/dev/null || true
      wait "$qemu_pid" 2>/dev/null || true
      qemu_pid=
      why="a KVM guest did not reach its test unit (kernel banner within 20s, the unit within ${kvm_probe}s) ($( ((rc == 1)) && echo "qemu exited: $(tail -n 2 "$run/qemu.out" | tr '\n' ' ')" || echo "last console line: '$(tr -cd '[:print:]\n' <"$log" | sed 's/\[[0-9;?]*[a-zA-Z]//g' | grep -E '[[:alnum:]].{2,}' | tail -n 1 | cut -c1-120)'"))"
      cp "$log" "$cache/kvm-probe-serial.log" 2>/dev/null || true
      accel=tcg
      tests=${VM_TESTS:-$tcg_tests}
      echo "$tests" >"$run/share/env/tests"
      rm -rf "$run/share/out" && mkdir -p "$run/share/out"
      t0=$SECONDS
    fi
  fi
  say "accelerator: $accel ($why)"
  say "e2e files: $tests ($([[ -n ${VM_TESTS:-} ]] && echo "VM_TESTS" || { [[ $accel == tcg ]] && echo "TCG: the cgroup, limit, warm-path and service files" || echo "KVM: everything"; }))"
  if [[ -z $qemu_pid ]]; then
    start_qemu "$accel" "$log"
    wait_marker "$log" 600 || true
  fi
  grep -qa "$marker" "$log" || { tail -n 30 "$log" >&2; die "the guest did not reach its test unit (serial log above)"; }
  phase "boot ($accel) to the test unit" $((SECONDS - t0))

  t0=$SECONDS
  while kill -0 "$qemu_pid" 2>/dev/null; do
    if ((SECONDS - t0 > vm_timeout)); then
      tail -n 30 "$log" >&2
      die "the guest did not finish within VM_TIMEOUT=${vm_timeout}s; qemu killed (serial log above)"
    fi
    sleep 2
  done
  wait "$qemu_pid" 2>/dev/null || true
  qemu_pid=
  phase "guest run" $((SECONDS - t0))

  local o=$run/share/out
  mkdir -p "$cache/last"
  cp -a "$o/." "$cache/last/" 2>/dev/null || true
  cp "$log" "$cache/last/serial.log"
  [[ -s $o/results ]] || { tail -n 40 "$log" >&2; die "the guest wrote no results (serial log above)"; }
  say "guest boot: $(cat "$o/boot" 2>/dev/null)s of guest uptime when its test unit started (kernel, initrd, systemd)"
  if [[ -s $o/check.txt ]]; then
    say "guest: pyexec check (in a delegated system service):"
    sed 's/^/  /' "$o/check.txt" >&2
  fi
  local name st secs p f s
  say "$(printf '%-14s %-6s %6s %7s %7s %8s' suite status time passed failed skipped)"
  while read -r name st secs p f s; do
    say "$(printf '%-14s %-6s %5ss %7s %7s %8s' "$name" "$( ((st == 0)) && echo ok || echo FAIL)" "$secs" "$p" "$f" "$s")"
    ((st == 0)) || fail=1
  done <"$o/results"
  for name in e2e unprivileged systemd; do
    [[ -s $o/$name.log ]] || continue
    grep -qE '^(FAILED|ERROR) ' "$o/$name.log" && { say "$name failures:"; grep -E '^(FAILED|ERROR) ' "$o/$name.log" >&2; }
  done
  # Each e2e file's time in the guest (from pytest's junit XML).
  for name in e2e unprivileged systemd; do
    [[ -s $o/$name.xml ]] || continue
    say "$name: seconds per file in the guest:"
    python3 - "$o/$name.xml" <<'PY' >&2 || true
import collections, sys, xml.etree.ElementTree as ET
t = collections.Counter()
for c in ET.parse(sys.argv[1]).iter("testcase"):
    parts = c.get("classname", "?").split(".")
    mod = next((i for i, p in enumerate(parts) if p.startswith("test_")), len(parts) - 1)
    t["/".join(parts[: mod + 1]) + ".py"] += float(c.get("time", 0))
for f, s in t.most_common():
    print(f"  {s:8.1f}s  {f}")
PY
  done
  # Last, nearest the end of the output: what each failure said (the
  # summary lines above are cut at 80 columns).
  for name in e2e unprivileged systemd; do
    [[ -s $o/$name.xml ]] || continue
    python3 - "$o/$name.xml" "$name" <<'PY' >&2 || true
import sys, xml.etree.ElementTree as ET
for c in ET.parse(sys.argv[1]).iter("testcase"):
    for bad in list(c.findall("failure")) + list(c.findall("error")):
        text = " ".join((bad.get("message") or bad.text or "").split())
        print(f"test-vm: {sys.argv[2]}: {bad.tag} in {c.get('name')}: {text[:1200]}")
PY
  done
  grep -q '^unit ' "$o/results" && grep -q '^e2e ' "$o/results" && grep -q '^unprivileged ' "$o/results" ||
    { fail=1; say "a suite did not run (guest log: $cache/last/guest.log)"; }
  phase "total" $((SECONDS - t_all))
  ((fail == 0)) || die "FAILED (logs in $cache/last)"
  say "passed (logs in $cache/last)"
}

{
  case ${1:-} in
  __guest) shift; guest "$@" ;;
  __leaf) shift; leaf "$@" ;;
  *) main "$@" ;;
  esac
  exit
}
