#!/bin/bash
# Runs the busted specs with Lua 5.4 (Debian's plain `busted` runs Lua 5.1) in TAP form,
# then prints the plain closing line "N passed, N failed" that CI reads.
set -uo pipefail
cd "$(dirname "$0")/.."
# CONNRT_BUILD: another build directory to test (make sanitize, make valgrind): the specs
# spawn its connrt (spec/support/helpers.lua) and load its connrt.so. CONNRT_SPEC_LUA: the
# command that runs lua5.4, here and in the specs (make sanitize preloads the ASan runtime).
build=${CONNRT_BUILD:-build}
cpath=()
if [ -n "${CONNRT_BUILD:-}" ]; then cpath=(--cpath="$CONNRT_BUILD/?.so"); fi
mkdir -p "$build"
# a spec that hangs (a process it started outlives it) fails the run after 40 minutes
# instead of holding CI to its limit (CONNRT_SPEC_TIMEOUT: seconds)
timeout -k 10 "${CONNRT_SPEC_TIMEOUT:-2400}" ${CONNRT_SPEC_LUA:-lua5.4} /usr/bin/busted -o TAP "${cpath[@]}" "$@" | tee "$build/specs.tap"
rc=${PIPESTATUS[0]}
passed=$(grep -c '^ok ' "$build/specs.tap")
failed=$(grep -c '^not ok ' "$build/specs.tap")
echo "specs: $passed passed, $failed failed"
if [ "$rc" -eq 0 ] && [ "$failed" -ne 0 ]; then rc=1; fi
if [ "$passed" -eq 0 ]; then echo "specs: no spec ran"; rc=1; fi
exit "$rc"
