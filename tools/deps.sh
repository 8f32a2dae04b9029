#!/bin/sh
# Installs what connrt needs to build and test, from the distribution's packages and
# from npm (the pinned test authorization server under spec/). Safe to run again:
# it installs only what is missing.
set -eu
cd "$(dirname "$0")/.."

PKGS="pkg-config lua5.4 liblua5.4-dev lua-cjson libcurl4-openssl-dev libssl-dev liblmdb-dev lua-busted lua-check ca-certificates"
missing=""
for p in $PKGS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
  echo "deps: installing$missing"
  SUDO=""
  [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q $missing >/dev/null
fi

# the test authorization server (oidc-provider), pinned by spec/package-lock.json
if [ ! -f spec/node_modules/.package-lock.json ] || [ spec/package-lock.json -nt spec/node_modules/.package-lock.json ]; then
  echo "deps: npm ci in spec/"
  (cd spec && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
fi
