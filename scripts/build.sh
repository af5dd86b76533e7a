#!/usr/bin/env bash
# Configures and builds rmai-testbed in build/ (installing missing Debian packages first).
# RMAI_SANITIZE=ON builds with ASan and UBSan in build-sanitize/ instead (scripts/test.sh --sanitize).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
"$top/scripts/setup.sh"
if [ "${RMAI_SANITIZE:-OFF}" = ON ]; then
  dir=$top/build-sanitize
  build_type=${RMAI_BUILD_TYPE:-RelWithDebInfo}
else
  dir=$top/build
  build_type=${RMAI_BUILD_TYPE:-Release}
fi
cmake -S "$top" -B "$dir" -DCMAKE_BUILD_TYPE="$build_type" -DRMAI_WERROR="${RMAI_WERROR:-ON}" \
  -DRMAI_SANITIZE="${RMAI_SANITIZE:-OFF}" >/dev/null
cmake --build "$dir" -j "$(nproc)"
