#!/bin/bash
# Issue 17 asked to move the redirect listener onto libevent's evhttp (the proxy's
# server) unless a measured reason says otherwise. This builds the evhttp version
# (bench/listener_evhttp.c, same Lua API) into build/evl/ (a connrt binary and a
# connrt.so with it in place of src/api/listener.c), runs the listener's
# specs against it, then measures with bench/listener_probe.py what hostile clients get
# from each listener. Usage: bash bench/listener-evhttp.sh [spec...]
# (default: spec/listener_spec.lua spec/abuse_spec.lua)
set -uo pipefail
cd "$(dirname "$0")/.."
make --no-print-directory all >/dev/null || exit 1
evl=build/evl
mkdir -p "$evl/obj"
cflags="-O2 -g -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -fPIC $(pkg-config --cflags lua5.4 libevent_core libevent_extra) -Isrc -Isrc/api -Iinclude -DCONNRT_VERSION='"0"'"
evlibs="$(pkg-config --libs libevent_core libevent_extra)"
cc $cflags -c -o "$evl/obj/listener_evhttp.o" bench/listener_evhttp.c || exit 1
# the Makefile's lists of objects, with bench/listener_evhttp.c for src/api/listener.c
objs() { make -s --no-print-directory --eval="print-objs: ; @echo \$($1)" print-objs | tr ' ' '\n' |
  sed "s|^build/obj/api/listener.o\$|$evl/obj/listener_evhttp.o|"; }
cc -o "$evl/connrt" $(objs BIN_OBJ) $(pkg-config --libs lua5.4) $evlibs || exit 1
cc -shared -o "$evl/connrt.so" $(objs API_OBJ) $(pkg-config --libs libcurl openssl lmdb libsodium libpq) \
  $evlibs || exit 1
# the rest of the build as it is
for f in connrt.1 connrt.pc lib lua libconnrt.a libconnrt.so examples; do
  ln -sfn "$PWD/build/$f" "$evl/$f"
done
echo "== the specs against the evhttp listener ($evl)"
specs=("$@")
[ ${#specs[@]} -gt 0 ] || specs=(spec/listener_spec.lua spec/abuse_spec.lua)
CONNRT_BUILD=$PWD/$evl bash tools/run-specs.sh "${specs[@]}" | grep -v '^ok ' | grep -v '^#\s*$'
echo "== hostile clients, hand-written (build/) and evhttp ($evl)"
for b in build "$evl"; do
  LUA_CPATH="$PWD/$b/?.so;;" /usr/bin/python3 bench/listener_probe.py "$b"
done
