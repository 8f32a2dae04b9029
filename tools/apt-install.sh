#!/bin/sh
# usage: sh tools/apt-install.sh LABEL PACKAGE...
# Installs those of the Debian packages that are missing (with sudo when not root), and
# says so as "LABEL: installing ..."; does nothing when all are there. What make deps,
# make bench, make fuzz and make valgrind install goes through here.
set -eu
label=$1
shift
missing=""
for p in "$@"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -n "$missing" ] || exit 0
echo "$label: installing$missing"
SUDO=""
[ "$(id -u)" = 0 ] || SUDO=sudo
$SUDO apt-get update -q >/dev/null
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q $missing >/dev/null
