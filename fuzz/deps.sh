#!/bin/sh
# What `make fuzz` needs beyond `make deps`: clang and its runtime libraries (libFuzzer
# and the sanitizers), from the distribution's packages. Installs only what is missing.
set -eu
missing=""
for p in clang libclang-rt-dev; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
  echo "fuzz deps: installing$missing"
  SUDO=""
  [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q $missing >/dev/null
fi
