#!/bin/sh
# meson install: the config file into DIR (/etc/pyexec) when it has none,
# so that a reinstall keeps the operator's edits (the pristine copy is
# installed beside the jobs, PKGDATADIR/pyexec.conf); then, installing into
# the running system under systemd, `systemctl daemon-reload` so that it
# reads the new pyexec.service.
# usage: install-config.sh BUILT_CONF DIR
set -eu
conf=$1
dest=${DESTDIR:-}$2/pyexec.conf
if [ -e "$dest" ]; then
  echo "Keeping $dest (the installed default: $(basename "$conf") under the data directory)"
else
  # 0640: the file may hold API_KEYS.
  install -D -m 0640 "$conf" "$dest"
  echo "Installing $conf to $dest"
fi
if [ -z "${DESTDIR:-}" ] && [ -d /run/systemd/system ] && command -v systemctl >/dev/null; then
  systemctl daemon-reload
fi
