#!/bin/sh
# Installs what connrt needs to build and test, from the distribution's packages and
# from npm (the pinned test authorization server under spec/). Safe to run again:
# it installs only what is missing.
set -eu
cd "$(dirname "$0")/.."

PKGS="pkg-config lua5.4 liblua5.4-dev lua-cjson libcurl4-openssl-dev libssl-dev liblmdb-dev libsodium-dev libpq-dev lua-busted lua-check strace time postgresql-15 git libevent-dev ca-certificates nginx-light"
sh tools/apt-install.sh deps $PKGS
SUDO="" # for the optional Chromium below, which may fail without asking
[ "$(id -u)" = 0 ] || SUDO=sudo

# the test authorization server (oidc-provider), pinned by spec/package-lock.json
if [ ! -f spec/node_modules/.package-lock.json ] || [ spec/package-lock.json -nt spec/node_modules/.package-lock.json ]; then
  echo "deps: npm ci in spec/"
  (cd spec && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
fi

# optional: Chromium for the real-browser spec (spec/browser_spec.lua, tagged #browser),
# which is skipped where it is missing; so failing to install it is not an error. sudo is
# asked not to prompt (-n), and a failed attempt is not repeated until `make clean`.
if [ ! -x /usr/bin/chromium ] && [ ! -f build/.no-chromium ]; then
  echo "deps: installing chromium (optional, for the #browser spec)"
  [ -z "$SUDO" ] || SUDO="sudo -n"
  if DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q chromium >/dev/null 2>&1 ||
     { $SUDO apt-get update -q >/dev/null 2>&1 &&
       DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q chromium >/dev/null 2>&1; }; then
    echo "deps: chromium installed"
  else
    echo "deps: chromium could not be installed; the #browser spec will be skipped (rm build/.no-chromium to retry)"
    mkdir -p build && : > build/.no-chromium
  fi
fi
