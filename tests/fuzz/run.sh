#!/usr/bin/env bash
# Fuzzes the trace readers (canonical CSV, JSON-lines import, binary .rmtrace), the experiment
# loader (YAML with --set) and memd's control protocol (hellos as the server reads them, answers as
# the client decodes them) with libFuzzer under AddressSanitizer and UndefinedBehaviorSanitizer for
# a bounded time each, two targets at a time.
#
#   tests/fuzz/run.sh [WORK_DIR]      (CTest passes <build>/tests/fuzz)
#
# Builds straight from the sources with clang++ (no SimGrid, no CMake: the readers need only
# traces/, posix/files and config/errors.hpp; the loader config/ and spec/ with yaml-cpp; the
# control protocol emul/control and emul/objects, without libfabric).
# Exit 0: no finding; 1: a finding (the input is saved as
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
       -I"$src" -I"$src/tests/fuzz" -DRMAI_SOURCE_DIR="\"$src\"")
headers=("$src"/traces/*.hpp "$src"/config/*.hpp "$src"/spec/*.hpp "$src"/posix/*.hpp "$src/tests/fuzz/memfile.hpp"
         "$src"/emul/control.hpp "$src"/emul/objects.hpp "$src"/emul/source.hpp)

# Compiles $2 into object $1 unless the object is newer than it and every header.
compile() {
  local object=$1 source=$2 stale=0
  [ -e "$object" ] || stale=1
  for file in "$source" "${headers[@]}"; do [ "$file" -nt "$object" ] && stale=1; done
  [ $stale -eq 0 ] && return 0
  "$cxx" "${flags[@]}" -fsanitize=fuzzer-no-link -c "$source" -o "$object"
}

# Two at a time (this machine has two cores): the units of the readers and of the experiment loader.
units=(traces/trace traces/csv traces/jsonl traces/binary posix/files config/units config/tree
       spec/experiment spec/schemas spec/tiers emul/control emul/objects)
targets=(csv jsonl rmtrace experiment control)
jobs=()
for unit in "${units[@]}"; do
  compile "$work/${unit//\//_}.o" "$src/$unit.cpp" & jobs+=($!)
  [ ${#jobs[@]} -ge 2 ] && { wait "${jobs[0]}"; jobs=("${jobs[@]:1}"); }
done
for target in "${targets[@]}"; do
  compile "$work/fuzz_$target.o" "$src/tests/fuzz/fuzz_$target.cpp" & jobs+=($!)
  [ ${#jobs[@]} -ge 2 ] && { wait "${jobs[0]}"; jobs=("${jobs[@]:1}"); }
done
for pid in "${jobs[@]}"; do wait "$pid"; done  # set -e: a failed compile stops here

readers=("$work/traces_trace.o" "$work/traces_csv.o" "$work/traces_binary.o" "$work/posix_files.o")
"$cxx" "${flags[@]}" -fsanitize=fuzzer "$work/fuzz_csv.o" "${readers[@]}" -o "$work/fuzz_csv"
"$cxx" "${flags[@]}" -fsanitize=fuzzer "$work/fuzz_jsonl.o" "${readers[@]}" "$work/traces_jsonl.o" \
  -o "$work/fuzz_jsonl"
"$cxx" "${flags[@]}" -fsanitize=fuzzer "$work/fuzz_rmtrace.o" "${readers[@]}" -o "$work/fuzz_rmtrace"
"$cxx" "${flags[@]}" -fsanitize=fuzzer "$work/fuzz_experiment.o" "$work/config_units.o" "$work/config_tree.o" \
  "$work/spec_experiment.o" "$work/spec_schemas.o" "$work/spec_tiers.o" -lyaml-cpp -o "$work/fuzz_experiment"
"$cxx" "${flags[@]}" -fsanitize=fuzzer "$work/fuzz_control.o" "$work/emul_control.o" "$work/emul_objects.o" \
  "$work/config_units.o" "$work/config_tree.o" -lyaml-cpp -o "$work/fuzz_control"

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
# -max_len: large enough for 100k-deep nesting and lines longer than the readers' buffers.
run_target() {
  local target=$1 dict=()
  [ -f "$src/tests/fuzz/$target.dict" ] && dict=(-dict="$src/tests/fuzz/$target.dict")
  mkdir -p "$work/corpus-$target" "$work/findings-$target"
  # The scratch corpus first: new inputs go there, never into the seeds in the source tree.
  # Explicit exit codes: libFuzzer's default 77 would read as "skipped" to CTest.
  "$work/fuzz_$target" -max_total_time="$seconds" -timeout=5 -rss_limit_mb=2048 -malloc_limit_mb=1024 \
    -max_len=262144 -error_exitcode=1 -timeout_exitcode=1 "${dict[@]}" \
    -artifact_prefix="$work/findings-$target/" -print_final_stats=1 \
    "$work/corpus-$target" "$src/tests/fuzz/corpus/$target" >"$work/$target.log" 2>&1
}

report() {
  local target=$1
  echo "fuzz_$target: no finding ($(grep -m1 -o 'stat::number_of_executed_units: *[0-9]*' "$work/$target.log" | grep -o '[0-9]*$') runs in ${seconds}s)"
}

status=0
for pair in "csv jsonl" "rmtrace experiment" "control"; do  # two at a time
  read -ra names <<<"$pair"
  pids=()
  for target in "${names[@]}"; do run_target "$target" & pids+=($!); done
  for i in "${!pids[@]}"; do
    target=${names[$i]}
    if wait "${pids[$i]}"; then
      report "$target"
    else
      status=1
      echo "fuzz_$target: FINDING (log $work/$target.log, inputs in $work/findings-$target/):"
      tail -60 "$work/$target.log"
    fi
  done
done
exit $status
