#!/usr/bin/env bash
# Configures and builds rmai-testbed in build/ (installing missing Debian packages first).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
"$top/scripts/setup.sh"
build_type=${RMAI_BUILD_TYPE:-Release}
cmake -S "$top" -B "$top/build" -DCMAKE_BUILD_TYPE="$build_type" -DRMAI_WERROR="${RMAI_WERROR:-ON}" >/dev/null
cmake --build "$top/build" -j "$(nproc)"
