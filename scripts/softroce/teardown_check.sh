#!/usr/bin/env bash
# The SoftRoCE harness leaves nothing behind (CTest test softroce_teardown, label softroce).
# run.sh runs a command that succeeds (exit 0), one that fails (its exit 3 must come back), and one
# interrupted with SIGINT while the guest boots and one while its command (sleep 600) runs (exit
# 130 within 15 s). After each: no process of run.sh's session left (QEMU, tail, guest.sh,
# debootstrap), none naming its temporary folder, no such folder, no new mount, no new network
# device, nr_hugepages and HugePages_Rsvd unchanged, and in host mode no rxe device left.
#
#   RMAI_SOFTROCE=1 scripts/softroce/teardown_check.sh
#
# Opt-in like check.sh (four run.sh calls, three of them full boots: minutes under TCG); exit 77 (skipped) without
# RMAI_SOFTROCE=1 or when run.sh reports the environment unavailable; 1 on a leak or a wrong status.
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
run=$top/scripts/softroce/run.sh

if [ "${RMAI_SOFTROCE:-0}" != 1 ]; then
  echo "softroce_teardown: skipped: set RMAI_SOFTROCE=1 to boot the SoftRoCE guest (minutes under TCG)" >&2
  exit 77
fi
say() { echo "softroce_teardown: $*" >&2; }
failures=0
# An unexpected failure of the script itself names its command rather than ending in silence.
set -E
trap 'say "harness step failed (line $LINENO): $BASH_COMMAND"' ERR
fail() { say "FAIL: $*"; failures=$((failures + 1)); }

# run.sh's TMPDIR: its temporary folder, and so QEMU's and tail's arguments, carry this unique path,
# which tells them from other QEMU runs on the machine.
private=$(mktemp -d "${TMPDIR:-/tmp}/softroce-teardown.XXXXXX")
export TMPDIR=$private
pid=
# Killed itself (a CI or CTest timeout): run.sh is in a session of its own and would not get the
# signal; stop it (it tears QEMU down) before removing the folder it works in.
stop_run() {
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 80); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
  fi
  rm -rf "$private"
}
trap stop_run EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
cache=${RMAI_SOFTROCE_CACHE:-${XDG_CACHE_HOME:-${HOME:-$top/build}/.cache}/rmai-softroce}
if "$top/scripts/softroce/host.sh" --probe 2>/dev/null && [ "${RMAI_SOFTROCE_HOST:-auto}" != 0 ]; then mode=host; else mode=guest; fi
say "run.sh's mode here: $mode"

# What the harness could leave behind. Mounts only under the folders it works in (another build on
# the machine may mount elsewhere); every network device; the huge page counters.
snapshot() {
  echo "mounts:"; awk -v a="$top/" -v b="$private/" -v c="$cache/" \
    'index($5, a) == 1 || index($5, b) == 1 || index($5, c) == 1 {print "  " $5}' /proc/self/mountinfo | sort
  echo "network devices:"; ls /sys/class/net | sed 's/^/  /'
  echo "nr_hugepages $(cat /proc/sys/vm/nr_hugepages)"
  echo "HugePages_Rsvd $(awk '/^HugePages_Rsvd/ {print $2}' /proc/meminfo)"
  if command -v rdma >/dev/null; then echo "rdma links:"; { rdma link show 2>/dev/null || true; } | awk '{print "  " $2}'; fi
}
# Processes of run.sh's session (it is started with setsid) or naming its folder, less this
# subshell's own ps and awk.
leftovers() {
  ps -eo pid=,ppid=,sid=,args= | awk -v s="$1" -v d="$private/softroce." -v me="$BASHPID" \
    '($3 == s || index($0, d)) && $1 != me && $2 != me {print "  " $0}'
}

start() {   # [run.sh args]: run.sh in a session of its own, SIGINT at its default (a background
  # job of a non-interactive shell ignores it, and bash cannot trap a signal ignored at entry)
  before=$(snapshot)
  env --default-signal=INT setsid "$run" "$@" >"$private/log" 2>&1 &
  pid=$!
  sleep 0.2
  if kill -0 "$pid" 2>/dev/null && [ "$(ps -o sid= -p "$pid" | tr -d ' ')" != "$pid" ]; then
    say "setsid did not run run.sh as a session leader: cannot find its processes"; exit 1
  fi
}
finish() {   # NAME EXPECTED_STATUS SECONDS: waits for run.sh, then looks for leftovers
  local name=$1 expected=$2 limit=$3 rc=0 t0 left
  t0=$(date +%s)
  while kill -0 "$pid" 2>/dev/null && [ $(($(date +%s) - t0)) -lt "$limit" ]; do sleep 0.2; done
  if kill -0 "$pid" 2>/dev/null; then
    fail "$name: run.sh still running after $limit s"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" || rc=$?
  if [ "$rc" = 77 ] && [ "$expected" != 77 ]; then
    sed 's/^/  | /' "$private/log" >&2
    say "skipped: run.sh reports the environment unavailable (above)"; exit 77
  fi
  say "$name: exit $rc after $(($(date +%s) - t0)) s"
  [ "$rc" = "$expected" ] || { fail "$name: exit $rc, expected $expected"; tail -n 30 "$private/log" | sed 's/^/  | /' >&2; }
  sleep 1   # a process killed at the very end is gone from /proc a moment later
  left=$(leftovers "$pid")
  if [ -n "$left" ]; then
    fail "$name: processes left:"; echo "$left" >&2
    # Ours, by id: end them so the machine is not left loaded by a failed test.
    echo "$left" | awk '{print $1}' | xargs -r kill -KILL 2>/dev/null || true
  fi
  compgen -G "$private/softroce.*" >/dev/null && fail "$name: temporary folder left: $(ls -d "$private"/softroce.*)"
  diff <(echo "$before") <(snapshot) >"$private/diff" || { fail "$name: left behind (< before, > after):"; sed 's/^/  /' "$private/diff" >&2; }
  return 0
}
# Waits until FILE-PATTERN's text matches REGEX (up to SECONDS); false when it never did.
await() {
  local t0
  t0=$(date +%s)
  until grep -qsE "$2" $1; do
    kill -0 "$pid" 2>/dev/null || return 1
    [ $(($(date +%s) - t0)) -lt "$3" ] || return 1
    sleep 0.5
  done
}

# 1. A command that succeeds (the guest is built here first when not cached).
start true
finish success 0 2400
# 2. A command that fails: its status comes back.
start 'exit 3'
finish failure 3 1200
# 3. SIGINT while the guest boots (QEMU started, no command yet).
if [ "$mode" = guest ]; then
  start --verbose 'sleep 600'
  if await "$private/softroce.*/console.log" . 600; then sleep 3; kill -INT "$pid"; else fail "boot: the guest never wrote to its console"; fi
  finish "SIGINT during the boot" 130 15
fi
# 4. SIGINT while the command runs (and tail -f of --verbose with it).
start --verbose 'sleep 600'
if await "$private/log" 'running: sleep 600' 900; then sleep 3; kill -INT "$pid"; else fail "command: never started"; fi
finish "SIGINT during the command" 130 15

[ "$failures" = 0 ] || { say "$failures failure(s)"; exit 1; }
say "nothing left behind, all statuses as expected"
