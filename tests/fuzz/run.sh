#!/usr/bin/env bash
# Fuzzes the trace readers (canonical CSV, JSON-lines import) with libFuzzer under AddressSanitizer
# and UndefinedBehaviorSanitizer for a bounded time each, the two targets side by side.
#
#   tests/fuzz/run.sh [WORK_DIR]      (CTest passes <build>/tests/fuzz)
#
# Builds straight from the sources with clang++ (no SimGrid, no CMake: the readers need only
# traces/ and config/errors.hpp). Exit 0: no finding; 1: a finding (the input is saved as
# WORK_DIR/findings-<target>/crash-* or timeout-*, the log is printed); 77: clang++ or libFuzzer
# missing (CTest reports the test as skipped). RMAI_FUZZ_SECONDS changes the time per target.
set -euo pipefail

src=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
work=${1:-${TMPDIR:-/tmp}/rmai-fuzz}
seconds=${RMAI_FUZZ_SECONDS:-20}
cxx=${RMAI_FUZZ_CXX:-clang++}
mkdir -p "$work"

if ! command -v "$cxx" >/dev/null; then
  echo "SKIP: $cxx not found (scripts/setup.sh installs clang and libclang-rt-14-dev)"
  exit 77
fi
echo 'extern "C" int LLVMFuzzerTestOneInput(const unsigned char*, unsigned long) { return 0; }' \
  >"$work/probe.cpp"
if ! "$cxx" -fsanitize=fuzzer,address,undefined "$work/probe.cpp" -o "$work/probe" 2>"$work/probe.log"; then
  echo "SKIP: $cxx cannot link libFuzzer with ASan/UBSan (libclang-rt-14-dev missing?):"
  head -5 "$work/probe.log"
  exit 77
fi

# UBSan must stop on its first report, or it is only a line in the log.
flags=(-std=c++20 -g -O1 -fsanitize=address,undefined -fno-sanitize-recover=all
       -I"$src" -I"$src/tests/fuzz")
headers=("$src"/traces/*.hpp "$src/config/errors.hpp" "$src/tests/fuzz/memfile.hpp")

# Compiles $2 into object $1 unless the object is newer than it and every header.
compile() {
  local object=$1 source=$2 stale=0
  [ -e "$object" ] || stale=1
  for file in "$source" "${headers[@]}"; do [ "$file" -nt "$object" ] && stale=1; done
  [ $stale -eq 0 ] && return 0
  "$cxx" "${flags[@]}" -fsanitize=fuzzer-no-link -c "$source" -o "$object"
}

pids=()
for unit in trace csv jsonl; do
  compile "$work/$unit.o" "$src/traces/$unit.cpp" & pids+=($!)
done
for target in csv jsonl; do
  compile "$work/fuzz_$target.o" "$src/tests/fuzz/fuzz_$target.cpp" & pids+=($!)
done
for pid in "${pids[@]}"; do wait "$pid"; done  # set -e: a failed compile stops here

"$cxx" "${flags[@]}" -fsanitize=fuzzer "$work/fuzz_csv.o" "$work/trace.o" "$work/csv.o" \
  -o "$work/fuzz_csv"
"$cxx" "${flags[@]}" -fsanitize=fuzzer "$work/fuzz_jsonl.o" "$work/trace.o" "$work/csv.o" \
  "$work/jsonl.o" -o "$work/fuzz_jsonl"

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
run_target() {
  local target=$1
  mkdir -p "$work/corpus-$target" "$work/findings-$target"
  # The scratch corpus first: new inputs go there, never into the seeds in the source tree.
  # Explicit exit codes: libFuzzer's default 77 would read as "skipped" to CTest.
  "$work/fuzz_$target" -max_total_time="$seconds" -timeout=5 -rss_limit_mb=2048 \
    -error_exitcode=1 -timeout_exitcode=1 -dict="$src/tests/fuzz/$target.dict" \
    -artifact_prefix="$work/findings-$target/" -print_final_stats=1 \
    "$work/corpus-$target" "$src/tests/fuzz/corpus/$target" >"$work/$target.log" 2>&1
}

status=0
run_target csv & csv_pid=$!
run_target jsonl & jsonl_pid=$!
for target in csv jsonl; do
  pid_var=${target}_pid
  if wait "${!pid_var}"; then
    echo "fuzz_$target: no finding ($(grep -m1 -o 'stat::number_of_executed_units: *[0-9]*' "$work/$target.log" | grep -o '[0-9]*$') runs in ${seconds}s)"
  else
    status=1
    echo "fuzz_$target: FINDING (log $work/$target.log, inputs in $work/findings-$target/):"
    tail -60 "$work/$target.log"
  fi
done
exit $status
