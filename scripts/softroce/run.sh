#!/usr/bin/env bash
# Runs COMMAND inside a QEMU guest with a SoftRoCE device (rdma_rxe, "rxe0" on dummy0, 10.77.0.1),
# for the emulator's `verbs` provider on machines without RDMA hardware or an RDMA-capable kernel.
#
#   scripts/softroce/run.sh [--timeout S] [--boot-timeout S] [--memory MiB] [--verbose] [--] COMMAND...
#
# The guest (Debian's stock kernel + a minbase root, scripts/softroce/guest.sh) is built once per
# kernel version and guest.sh version into ~/.cache/rmai-softroce/ (RMAI_SOFTROCE_CACHE). It boots
# under TCG (no KVM needed), with the repository shared over 9p at the same absolute path, so
# build/bin/* run as they are; COMMAND runs in the current directory when that is inside the
# repository (else at its top), through bash -c when it is one word containing a space. Variables FI_*, RDMAV_*, RMAI_* and GTEST_* are passed on.
#
# Exit status: COMMAND's own; 124 when it timed out (--timeout, default 900 s); 77 when the
# environment is unavailable (no QEMU, no package archive, the guest did not boot, rxe did not come
# up), so CTest can mark a test skipped; 125 when this harness itself failed otherwise; 130/143 on
# INT/TERM. QEMU and every other child are always ended, and the temporary folder removed, on exit
# and on INT/TERM (scripts/softroce/teardown_check.sh tests it).
#
# Host mode: where this machine's own kernel has rdma_rxe and this runs as root, COMMAND runs here
# instead, on an rxe device of scripts/softroce/host.sh (no guest, no boot). RMAI_SOFTROCE_HOST=0
# never does, =1 insists (77 when the host cannot), unset or "auto" tries it first.
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
here=$top/scripts/softroce
build=${RMAI_SOFTROCE_BUILD:-$top/build}   # the binaries the guest must carry the libraries of
qemu=${RMAI_SOFTROCE_QEMU:-qemu-system-x86_64}

timeout_s=900
boot_timeout=600   # TCG boots Debian's kernel and unpacks the initramfs slowly on a busy machine
memory=4096
verbose=0
while [ $# -gt 0 ]; do
  case $1 in
    --timeout) timeout_s=$2; shift 2 ;;
    --boot-timeout) boot_timeout=$2; shift 2 ;;
    --memory) memory=$2; shift 2 ;;
    --verbose) verbose=1; shift ;;
    --) shift; break ;;
    -h|--help) sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "softroce: unknown option $1" >&2; exit 125 ;;
    *) break ;;
  esac
done
[ $# -gt 0 ] || { echo "usage: $0 [--timeout S] [--boot-timeout S] [--memory MiB] [--verbose] [--] COMMAND..." >&2; exit 125; }

say() { echo "softroce: $*" >&2; }
unavailable() { say "environment unavailable: $*"; exit 77; }

# Host mode first when asked or possible (host.sh --probe: no side effects, says why not).
case ${RMAI_SOFTROCE_HOST:-auto} in
  0) ;;
  1) exec "$here/host.sh" --timeout "$timeout_s" -- "$@" ;;
  auto) if why=$("$here/host.sh" --probe 2>&1); then exec "$here/host.sh" --timeout "$timeout_s" -- "$@"; fi
    [ "$verbose" = 1 ] && say "host mode unavailable (${why#softroce: }); using the QEMU guest" ;;
  *) echo "softroce: RMAI_SOFTROCE_HOST must be 0, 1 or auto, not $RMAI_SOFTROCE_HOST" >&2; exit 125 ;;
esac

# Every child that can last (apt, the guest build, QEMU, tail) runs as a background job: bash runs
# a trap only once a foreground command has ended, but interrupts a wait at once. The EXIT trap ends
# whatever job is still running. Set before step 1, so that nothing starts untracked.
tmp=
# The output goes with the job, not the call: a trap runs inside the call's redirections.
job() {   # [--out FILE | --stderr] COMMAND...: stdout to FILE, or to stderr
  case $1 in
    --out) local f=$2; shift 2; "$@" >"$f" & ;;
    --stderr) shift; "$@" >&2 & ;;
    *) "$@" & ;;
  esac
  wait $!
}
cleanup() {
  local status=$? p
  trap '' INT TERM   # a second signal must not cut the cleanup short
  # TERM, then time: QEMU closes its files, and the guest build cleans up after itself on TERM
  # (ends debootstrap, unmounts, removes its folder). KILL only what is still there after 30 s.
  for p in $(jobs -pr); do kill -TERM "$p" 2>/dev/null || true; done
  for _ in $(seq 60); do [ -z "$(jobs -pr)" ] && break; sleep 0.5; done
  for p in $(jobs -pr); do say "killing $p (still running 30 s after TERM)"; kill -KILL "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  [ -n "$tmp" ] && rm -rf "$tmp"
  exit "$status"
}
trap cleanup EXIT
trap 'say "interrupted"; exit 130' INT
trap 'say "terminated"; exit 143' TERM

# Step 1: QEMU, installed with apt when missing (scripts/setup.sh's optional softroce set).
if ! command -v "$qemu" >/dev/null; then
  if [ "$(id -u)" -ne 0 ] || ! job --stderr timeout 900 "$top/scripts/setup.sh" softroce; then
    unavailable "no $qemu, and apt could not install qemu-system-x86"
  fi
  command -v "$qemu" >/dev/null || unavailable "no $qemu (qemu-system-x86 is installed: RMAI_SOFTROCE_QEMU?)"
fi

# Step 2: a temporary folder for this boot: the guest's path, the initramfs with /init appended,
# the results share (the command, its output and exit code) and the console log.
tmp=$(mktemp -d "${TMPDIR:-/tmp}/softroce.XXXXXX")

# Step 3: the guest, from the cache or built now.
rc=0
job --out "$tmp/guest" "$here/guest.sh" "$build" || rc=$?
[ "$rc" -eq 77 ] && exit 77
[ "$rc" -eq 0 ] || { say "building the guest failed (exit $rc)"; exit 125; }
guest=$(cat "$tmp/guest")

mkdir -p "$tmp/results" "$tmp/overlay"
cp "$guest/initrd.gz" "$tmp/initrd"
install -m 0755 "$here/init" "$tmp/overlay/init"
# The kernel unpacks concatenated cpio archives in order: this /init is the last word. An archive
# must start 4-byte aligned (else the kernel takes it for a compressed one: "invalid magic"), and
# zeros between archives are skipped: pad with zeros.
size=$(stat -c %s "$tmp/initrd")
head -c $(((4 - size % 4) % 4)) /dev/zero >>"$tmp/initrd"
(cd "$tmp/overlay" && echo init | cpio -o -H newc --quiet) >>"$tmp/initrd"

case $PWD/ in "$top"/*) cwd=$PWD ;; *) cwd=$top ;; esac
{
  echo "# Written by scripts/softroce/run.sh: the host's command and the variables it passes on."
  for name in $(compgen -e); do
    case $name in RMAI_SOFTROCE_DEVICE|RMAI_SOFTROCE_ADDR) continue ;; esac   # the guest's own (init)
    case $name in FI_*|RDMAV_*|RMAI_*|GTEST_*) printf 'export %s=%q\n' "$name" "${!name}" ;; esac
  done
  printf 'cd %q || exit 125\n' "$cwd"
  if [ $# -eq 1 ] && [[ $1 == *' '* ]]; then printf 'exec bash -c %q\n' "$1"; else printf 'exec'; printf ' %q' "$@"; echo; fi
} >"$tmp/results/cmd.sh"

# Step 4: boot. TCG (no KVM here); "-cpu max" gives crc32_pclmul its instruction; 2 vCPUs and
# 4 GiB (the initramfs lives in RAM). No NIC: everything is loopback over rxe0 on dummy0.
say "booting the guest (kernel $(basename "$guest"), TCG; boot timeout ${boot_timeout} s, command timeout ${timeout_s} s)"
start=$(date +%s)
"$qemu" -accel tcg -cpu max -smp 2 -m "$memory" -nographic -no-reboot -nic none \
  -kernel "$guest/vmlinuz" -initrd "$tmp/initrd" \
  -append "console=ttyS0 panic=1 quiet loglevel=3 softroce_share=$top softroce_timeout=$timeout_s" \
  -virtfs "local,path=$top,mount_tag=rmai,security_model=none,multidevs=remap" \
  -virtfs "local,path=$tmp/results,mount_tag=results,security_model=none" \
  </dev/null >"$tmp/console.log" 2>&1 &
qpid=$!
# --pid: tail ends with QEMU even if this script is killed with SIGKILL and cannot clean up.
if [ "$verbose" = 1 ]; then tail -n +1 -f --pid="$qpid" "$tmp/console.log" >&2 & fi

console_tail() { say "last console lines:"; tail -n 25 "$tmp/console.log" | tr -d '\r' | sed 's/^/  | /' >&2; }
reached() { grep -q "^SOFTROCE-STEP $1" "$tmp/console.log"; }

# Step 5: watch the console until the command is done, a step fails, QEMU dies, or a deadline.
deadline=$((start + boot_timeout))
phase=boot
while :; do
  now=$(date +%s)
  if grep -q '^SOFTROCE-FAIL' "$tmp/console.log"; then
    why=$(grep -m1 '^SOFTROCE-FAIL' "$tmp/console.log" | tr -d '\r' | sed 's/^SOFTROCE-FAIL //')
    console_tail
    case $why in
      mount*) unavailable "the guest did not boot: $why" ;;
      *) unavailable "rxe did not come up: $why" ;;
    esac
  fi
  if [ "$phase" = boot ] && reached command; then
    say "guest up, rxe0 active after $((now - start)) s; running: $*"
    phase=command
    deadline=$((now + timeout_s + 60))   # the guest's own timeout fires first and reports 124
  fi
  grep -q '^SOFTROCE-DONE' "$tmp/console.log" && break
  if ! kill -0 "$qpid" 2>/dev/null; then
    [ -f "$tmp/results/rc" ] && break
    console_tail
    wait "$qpid" && qrc=0 || qrc=$?
    [ "$phase" = boot ] && unavailable "the guest did not boot (QEMU exited with $qrc before the command started)"
    say "the guest stopped before the command finished (QEMU exit $qrc)"
    exit 125
  fi
  if [ "$now" -ge "$deadline" ]; then
    console_tail
    if [ "$phase" = boot ]; then
      if reached rxe; then unavailable "rxe did not come up within ${boot_timeout} s"; fi
      unavailable "the guest did not boot within ${boot_timeout} s"
    fi
    say "command timed out after ${timeout_s} s (and the guest did not stop)"
    exit 124
  fi
  sleep 1
done

# Step 6: the command's output and exit code. QEMU is waited for (the guest powers itself off)
# and killed by the EXIT trap if it lingers.
for _ in $(seq 30); do kill -0 "$qpid" 2>/dev/null || break; sleep 1; done
[ -f "$tmp/results/rc" ] || { console_tail; say "the guest reported no exit code"; exit 125; }
cat "$tmp/results/stdout"
cat "$tmp/results/stderr" >&2
rc=$(cat "$tmp/results/rc")
[ "$rc" = 124 ] && say "command timed out after ${timeout_s} s"
say "done in $(($(date +%s) - start)) s (exit $rc)"
exit "$rc"
