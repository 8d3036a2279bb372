#!/bin/sh
# The container image's entrypoint (Dockerfile), started by tini: makes the
# container's own cgroup usable by pyexec, then execs `pyexec "$@"`, so that
# pyexec is tini's child and gets the SIGTERM tini forwards.
#
# Container runtimes mount the cgroup filesystem read-only. In a private
# cgroup namespace (--cgroupns=private) each hierarchy's mount shows the
# container's own cgroup as its root, and with CAP_SYS_ADMIN (which the
# sandbox needs anyway) it can be remounted read-write: pyexec then makes
# its run cgroups there, below the container's, with tree-wide memory, pids
# and CPU limits. Outside a private cgroup namespace, or without the
# privilege, nothing is changed and pyexec falls back to rlimits
# (`pyexec check` says which). docs/container.md has the whole story.
set -eu

own_root() { # true when /proc/self/cgroup shows $1's cgroup as "/" (a private cgroup namespace)
	awk -F: -v c="$1" '
		c == "" && $1 == "0" && $2 == "" { found = ($3 == "/") }
		c != "" && $1 != "0" { n = split($2, l, ","); for (i = 1; i <= n; i++) if (l[i] == c) found = ($3 == "/") }
		END { exit !found }' /proc/self/cgroup
}

read_only() { # true when the mount at $1 is read-only
	awk -v t="$1" '$5 == t { split($6, o, ","); ro = (o[1] == "ro") } END { exit !ro }' /proc/self/mountinfo
}

if [ -f /sys/fs/cgroup/cgroup.controllers ]; then
	# cgroup v2: the namespace's root may not hold processes once it
	# delegates controllers to the runs' parent, so this process (pyexec
	# after the exec) moves to a leaf of its own first.
	if own_root "" && read_only /sys/fs/cgroup && mount -o remount,rw /sys/fs/cgroup 2>/dev/null; then
		mkdir -p /sys/fs/cgroup/service
		echo $$ >/sys/fs/cgroup/service/cgroup.procs
	fi
else
	# cgroup v1 (or hybrid): the hierarchies pyexec uses.
	for c in memory pids cpuacct; do
		d=/sys/fs/cgroup/$c
		if [ -d "$d" ] && own_root "$c" && read_only "$d"; then
			mount -o remount,rw,bind "$d" 2>/dev/null || true
		fi
	done
fi
exec /usr/local/bin/pyexec "$@"
