#!/usr/bin/env bash
# The README's test command: builds everything, then runs every test with CTest.
#
#   scripts/test.sh [--sanitize] [CTEST_ARGS]...
#
# --sanitize: the same suite built with AddressSanitizer and UndefinedBehaviorSanitizer in
# build-sanitize/, where any report fails its test (CI runs both). The fuzz test is left out there:
# it builds its own sanitized targets, which the plain run already ran.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
if [ "${1:-}" = --sanitize ]; then
  shift
  RMAI_SANITIZE=ON "$top/scripts/build.sh"
  cd "$top/build-sanitize"
  # Every report is fatal and names its stack; leaks count too.
  export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:halt_on_error=1}
  export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
  ctest --output-on-failure -j "$(nproc)" -E '^fuzz_' "$@"
  exit
fi
"$top/scripts/build.sh"
cd "$top/build"
ctest --output-on-failure -j "$(nproc)" "$@"
