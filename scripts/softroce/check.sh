#!/usr/bin/env bash
# The SoftRoCE check (CTest test "softroce", label softroce): in the QEMU guest of run.sh, rxe0 is
# active, libfabric offers verbs;ofi_rxm on it, rmai sees the verbs transport available, and the
# Transport tests of test_emul_transport pass for the verbs provider.
#
#   RMAI_SOFTROCE=1 scripts/softroce/check.sh [BUILD_DIR]    (default build/)
#
# Opt-in: without RMAI_SOFTROCE=1 it exits 77 (skipped), because it boots a TCG guest for a minute
# or more (and builds it first, with debootstrap, a few minutes) and would load the 2 cores under
# the rest of the suite. Exits 77 too when the environment is unavailable (see run.sh).
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
build=$(cd "${1:-$top/build}" && pwd)

if [ "${RMAI_SOFTROCE:-0}" != 1 ]; then
  echo "softroce: skipped: set RMAI_SOFTROCE=1 to boot the SoftRoCE guest (minutes under TCG)" >&2
  exit 77
fi
# The guest sees the repository only, at the same path: the binaries must live inside it.
case $build/ in "$top"/*) ;; *) echo "softroce: skipped: $build is outside $top, which is all the guest sees" >&2; exit 77 ;; esac
for b in rmai test_emul_transport; do
  [ -x "$build/bin/$b" ] || { echo "softroce: $build/bin/$b is not built" >&2; exit 1; }
done

export RMAI_SOFTROCE_BUILD=$build
# One guest, the checks in order; the first failure ends the command with its status.
exec "$top/scripts/softroce/run.sh" --timeout 900 "set -e
ibv_devinfo -d rxe0 | grep -q PORT_ACTIVE
echo 'softroce check: rxe0 PORT_ACTIVE'
fi_info -p verbs -t FI_EP_RDM | grep -q 'verbs;ofi_rxm'
echo 'softroce check: libfabric offers verbs;ofi_rxm'
$build/bin/rmai list transports | grep -Eq '^ *verbs .*available here'
echo 'softroce check: rmai list transports: verbs available here'
$build/bin/test_emul_transport --gtest_filter='*/verbs' --gtest_brief=1"
