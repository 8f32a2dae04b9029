#!/bin/sh
# Runs each fuzz harness for SECONDS, one after the other: usage
#   sh fuzz/run.sh DIR SECONDS HARNESS...
# DIR holds the harness binaries (build/fuzz). Each starts from its seed corpus
# (DIR/seeds/NAME, written from the spec fixtures by fuzz/seeds.lua) and the corpus of
# earlier runs (DIR/corpus/NAME, where new inputs go), with fuzz/NAME.dict when there is
# one. SECONDS=0 only runs the corpora once (a smoke test). A crash leaves its input in
# DIR/crashes/ and makes the run fail once every harness had its turn.
set -u
cd "$(dirname "$0")/.."
dir=$1
seconds=$2
shift 2
lua5.4 fuzz/seeds.lua "$dir/seeds"
mkdir -p "$dir/crashes"
failed=""
for name in "$@"; do
  mkdir -p "$dir/corpus/$name"
  set -- -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$dir/crashes/$name-"
  [ -f "fuzz/$name.dict" ] && set -- "$@" -dict="fuzz/$name.dict"
  # the Lua harnesses skip libFuzzer's leak check: Lua's collector frees memory later
  # than the input that allocated it, so the check (a full heap scan) would run after
  # nearly every input and find nothing; the listener's is plain C, so it keeps it
  case $name in
    listener) set -- "$@" -max_len=20000 ;;
    *) set -- "$@" -max_len=8192 -detect_leaks=0 ;;
  esac
  if [ "$seconds" -gt 0 ]; then set -- "$@" -max_total_time="$seconds"; else set -- "$@" -runs=0; fi
  echo "fuzz: $name for ${seconds}s"
  if ! ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
      "$dir/$name" "$@" "$dir/corpus/$name" "$dir/seeds/$name" >"$dir/$name.log" 2>&1; then
    failed="$failed $name"
    tail -n 40 "$dir/$name.log"
  fi
  grep -E '^(stat::number_of_executed_units|stat::peak_rss_mb|Done)' "$dir/$name.log" | tr '\n' ' '
  echo
done
if [ -n "$failed" ]; then
  echo "fuzz: crashes in$failed (inputs in $dir/crashes/)"
  exit 1
fi
echo "fuzz: no crash"
