#!/bin/sh
# Installs what connrt needs to build and test, from the distribution's packages and
# from npm (the pinned test authorization server under spec/). Safe to run again:
# it installs only what is missing.
set -eu
cd "$(dirname "$0")/.."

PKGS="pkg-config lua5.4 liblua5.4-dev lua-cjson libcurl4-openssl-dev libssl-dev liblmdb-dev libsodium-dev libpq-dev lua-busted lua-check strace time postgresql-15 git libevent-dev ca-certificates nginx-light"
SUDO="" # for nginx's service and the optional Chromium below
[ "$(id -u)" = 0 ] || SUDO=sudo
new_nginx=""
[ -x /usr/sbin/nginx ] || new_nginx=1
sh tools/apt-install.sh deps $PKGS

# nginx is for the specs alone (spec/support/nginx.lua starts a private one on loopback
# ports with its own configuration): when this run installed it, the system service that
# Debian's package starts and enables (on port 80, where it is free) is stopped and
# disabled again. An nginx that was there before is left as it was.
if [ -n "$new_nginx" ]; then
  S=${SUDO:+sudo -n} # never asks: apt-get has just used sudo
  if [ -d /run/systemd/system ]; then
    $S systemctl disable --now nginx.service >/dev/null 2>&1 || true
  else
    $S invoke-rc.d nginx stop >/dev/null 2>&1 || true
    $S update-rc.d nginx disable >/dev/null 2>&1 || true
  fi
fi

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
