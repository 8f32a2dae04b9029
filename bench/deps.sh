#!/bin/sh
# What `make bench` needs beyond `make deps`: nginx (the upstream API), Python's
# requests-oauthlib (a peer to compare with) and valgrind (instruction counts).
set -eu
missing=""
for p in nginx-light python3-requests-oauthlib valgrind; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
  echo "bench deps: installing$missing"
  SUDO=""
  [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q $missing >/dev/null
fi
