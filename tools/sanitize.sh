#!/bin/bash
# make sanitize, after building build/sanitize with -fsanitize=address,undefined: runs
# the whole spec suite against that build and fails on any sanitizer report.
#
# The busted process loads the instrumented connrt.so, so it runs with the ASan runtime
# preloaded by ld.so's --preload (not LD_PRELOAD, which every node, chromium, make and
# gcc the specs start would inherit). Every instrumented process (connrt, the C example,
# lua5.4 with connrt.so) writes its ASan, LeakSanitizer and UBSan reports to
# build/sanitize/reports/KIND.PROGRAM.PID: a spec may well expect a non-zero exit and
# pass, so the reports, not the exit codes, decide. Leak detection stays on everywhere.
set -uo pipefail
cd "$(dirname "$0")/.."
export CONNRT_BUILD=$PWD/${SAN_BUILD:-build/sanitize}
reports=$CONNRT_BUILD/reports
rm -rf "$reports"
mkdir -p "$reports"

asan=$(${CC:-gcc} -print-file-name=libasan.so)
lua=$(command -v lua5.4)
ldso=$(readelf -l "$lua" | sed -n 's/.*\[Requesting program interpreter: \(.*\)\]/\1/p')
export CONNRT_SPEC_LUA="$ldso --preload $asan $lua"
# handle_sigbus=0: connrt handles SIGBUS itself (a truncated store file; src/api/store.c)
# intercept_memmem=0: the interceptor checks the whole rest of the text on every call, so
# textscan.find_all (one call per hit) became quadratic under it, and redact_spec's 6 MB
# text with 300,000 hits ran past its CPU limit; the ranges it passes are a Lua string's
# intercept_tls_get_addr=0: GCC 12's LeakSanitizer records the dynamic TLS blocks it sees
# through __tls_get_addr and its tracer, checking an exiting process, can follow a stale
# one and crash ("Tracer caught signal 11", LLVM review D147459, fixed in later runtimes):
# on a given heap layout every time (a connrt proxy exiting with its modules dlopen()ed);
# the blocks are heap chunks the DTV points to, so leak checking still reaches them.
export ASAN_OPTIONS="log_path=$reports/asan:log_exe_name=1:detect_leaks=1:handle_sigbus=0:exitcode=86:strict_string_checks=1:detect_stack_use_after_return=1:check_initialization_order=1:intercept_memmem=0:intercept_tls_get_addr=0"
export LSAN_OPTIONS="suppressions=$PWD/tools/lsan.supp:print_suppressions=0"
export UBSAN_OPTIONS="log_path=$reports/ubsan:log_exe_name=1:print_stacktrace=1:halt_on_error=1:exitcode=86"

start=$(date +%s)
bash tools/run-specs.sh "$@"
rc=$?
echo "sanitize: specs took $(( $(date +%s) - start )) s"

# A report that holds nothing but LeakSanitizer's own failure to look (it suspends every
# thread of the exiting process, which fails when a spec stops or kills that process at
# that moment: crash_spec's SIGKILLs, signal forwarding; its tracer thread may then fail to
# read a thread's registers or crash itself, "Tracer caught signal") is no finding: said,
# not counted. Every other report fails the run.
for f in "$reports"/*; do
  [ -e "$f" ] || continue
  if ! grep -qv -e 'Unable to get registers from thread' -e 'Tracer caught signal' \
      -e 'LeakSanitizer has encountered a fatal error' \
      -e 'HINT: For debugging, try setting' -e 'HINT: LeakSanitizer does not work under ptrace' "$f"; then
    echo "sanitize: LeakSanitizer could not check one exiting process (stopped or killed as it looked): $(basename "$f")"
    rm -f "$f"
  fi
done

if [ -n "$(ls -A "$reports")" ]; then
  for f in "$reports"/*; do
    echo "== $f"
    cat "$f"
  done
  echo "sanitize: $(ls "$reports" | wc -l) sanitizer report(s) in $reports"
  rc=1
else
  echo "sanitize: no sanitizer reports"
fi
exit "$rc"
