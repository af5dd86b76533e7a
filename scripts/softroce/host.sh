#!/usr/bin/env bash
# Runs COMMAND on this machine with a SoftRoCE device of its own kernel (rdma_rxe): the host mode
# of scripts/softroce/run.sh, for kernels that have rxe (most distribution kernels), without a guest.
#
#   scripts/softroce/host.sh [--timeout S] [--] COMMAND...    (as root)
#   scripts/softroce/host.sh --probe                          can this machine? (no side effects)
#
# Loads the modules, creates the dummy interface rmai_rxe_net with 10.77.0.1/24 (the guest's
# address: a private /24 rarely routed; RMAI_SOFTROCE_ADDR=A.B.C.D/24 for another when it is in use
# here) and the rxe device rxe_rmai on it, exports what the guest's /init does (FI_UNIVERSE_SIZE,
# RMAI_SOFTROCE_DEVICE, RMAI_SOFTROCE_ADDR) and runs COMMAND as run.sh would (bash -c for one word
# with a space). The rxe device and the interface are ALWAYS removed on exit, INT and TERM; the
# modules stay loaded (something else may use them). One run at a time (a lock).
#
# Exit status as run.sh's: COMMAND's own, 124 timeout, 77 when this machine cannot (not root, no
# rdma_rxe in its kernel, tools missing, the address in use; the reason says what to do), 125 when
# this script failed otherwise, 130/143 on INT/TERM.
set -euo pipefail
dev=rxe_rmai
net=rmai_rxe_net
addr=${RMAI_SOFTROCE_ADDR:-10.77.0.1/24}
ip4=${addr%/*}

timeout_s=900
probe=0
while [ $# -gt 0 ]; do
  case $1 in
    --timeout) timeout_s=$2; shift 2 ;;
    --probe) probe=1; shift ;;
    --) shift; break ;;
    -h|--help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "softroce: unknown option $1" >&2; exit 125 ;;
    *) break ;;
  esac
done
[ "$probe" = 1 ] || [ $# -gt 0 ] || { echo "usage: $0 [--timeout S] [--] COMMAND... | --probe" >&2; exit 125; }

say() { echo "softroce: $*" >&2; }
unavailable() { say "host mode unavailable: $*"; exit 77; }

# What must hold before anything is changed (also all that --probe checks).
[ "$(id -u)" -eq 0 ] || unavailable "needs root to load rdma_rxe and add devices: run it as root (sudo -E), or use the QEMU guest (scripts/softroce/run.sh, RMAI_SOFTROCE_HOST=0)"
# The kernel first (the tools can be installed, the kernel cannot): rdma_rxe loaded, built in, or
# a module of this kernel's tree.
mods=/lib/modules/$(uname -r)
[ -d /sys/module/rdma_rxe ] || grep -qs '/rdma_rxe\.ko' "$mods/modules.dep" "$mods/modules.builtin" ||
  unavailable "this kernel ($(uname -r)) has no rdma_rxe (not in $mods; Ubuntu has it in linux-modules-extra-$(uname -r)); the QEMU guest needs none: scripts/softroce/run.sh with RMAI_SOFTROCE_HOST=0"
for tool in modprobe ip rdma ibv_devinfo fi_info; do
  command -v "$tool" >/dev/null ||
    unavailable "no $tool: apt-get install kmod iproute2 rdma-core ibverbs-providers ibverbs-utils libfabric-bin"
done
# Another interface on that network would make the address ambiguous (ours, a stale one of a run
# killed with SIGKILL, is removed below).
inuse=$(ip -o -4 addr show to "${ip4%.*}.0/24" 2>/dev/null | awk -v n="$net" '$2 != n {print $2}')
[ -z "$inuse" ] || unavailable "${ip4%.*}.0/24 is already on $inuse here: set RMAI_SOFTROCE_ADDR to a free private /24"
[ "$probe" = 0 ] || exit 0

created=0
cleanup() {
  local status=$? p
  trap '' INT TERM   # a second signal must not cut the cleanup short
  for p in $(jobs -pr); do kill -TERM "$p" 2>/dev/null || true; done   # COMMAND, under timeout
  for _ in $(seq 20); do [ -z "$(jobs -pr)" ] && break; sleep 0.5; done
  for p in $(jobs -pr); do kill -KILL "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ "$created" = 1 ]; then
    timeout 30 rdma link delete "$dev" 2>/dev/null || true
    timeout 30 ip link delete "$net" 2>/dev/null || true
    [ -e "/sys/class/infiniband/$dev" ] && { say "could not remove $dev"; status=125; }
    [ -e "/sys/class/net/$net" ] && { say "could not remove $net"; status=125; }
  fi
  exit "$status"
}
trap cleanup EXIT
trap 'say "interrupted"; exit 130' INT
trap 'say "terminated"; exit 143' TERM

# One run at a time: the names and the address are fixed. (The braces keep the 2>/dev/null to
# this exec: on a bare exec it would silence the script's stderr from here on.)
{ exec 9>/run/lock/rmai-softroce-host.lock; } 2>/dev/null || exec 9>/tmp/rmai-softroce-host.lock
flock -w 900 9 & wait $! || { say "another host-mode run held the lock for 15 min"; exit 125; }

# Bounded steps, each named when it fails.
t() { timeout 60 "$@"; }
fail() { say "step failed: $*"; exit 77; }
created=1   # from here on, whatever exists of ours is removed on exit (also a stale one now)
[ -e "/sys/class/infiniband/$dev" ] && { say "removing a stale $dev"; t rdma link delete "$dev" || fail "rdma link delete $dev"; }
[ -e "/sys/class/net/$net" ] && { say "removing a stale $net"; t ip link delete "$net" || fail "ip link delete $net"; }
# rxe computes its ICRC with crc32 but does not declare it: load it first (crc32_pclmul may not
# exist or load; crc32_generic is enough). The user-space interfaces are loaded on demand by udev
# only where it runs.
t modprobe crc32_generic 2>/dev/null || grep -qw crc32 /proc/crypto || fail "modprobe crc32_generic"
t modprobe crc32_pclmul 2>/dev/null || true
for m in rdma_rxe ib_uverbs rdma_ucm dummy; do t modprobe "$m" || fail "modprobe $m"; done
# rxe needs a netdev with an IPv4 address that is not lo (rdma_cm and libfabric reject lo).
t ip link add "$net" type dummy || fail "ip link add $net type dummy"
t ip addr add "$addr" dev "$net" || fail "ip addr add $addr dev $net"
t ip link set "$net" up || fail "ip link set $net up"
t rdma link add "$dev" type rxe netdev "$net" || fail "rdma link add $dev type rxe netdev $net"
# (grep without -q: with pipefail, ibv_devinfo writing after grep -q left would fail the test.)
active() { ibv_devinfo -d "$dev" 2>/dev/null | grep PORT_ACTIVE >/dev/null; }
has_gid() { ibv_devinfo -v -d "$dev" 2>/dev/null | grep -F "::ffff:$ip4" >/dev/null; }
for _ in $(seq 30); do active && has_gid && break; sleep 1; done
active || fail "$dev's port is not PORT_ACTIVE after 30 s"
has_gid || fail "$dev has no RoCE v2 GID for $ip4"
say "$dev active on $net ($addr); running: $*"

ulimit -l unlimited   # registered memory is pinned
# ofi_rxm over rxe sizes its completion queues from the universe size; rxe's CQ limit needs it small.
export FI_UNIVERSE_SIZE=${FI_UNIVERSE_SIZE:-16}
export RMAI_SOFTROCE_DEVICE=$dev RMAI_SOFTROCE_ADDR=$addr
rc=0
if [ $# -eq 1 ] && [[ $1 == *' '* ]]; then set -- bash -c "$1"; fi
timeout --kill-after=10 "$timeout_s" "$@" </dev/null & wait $! || rc=$?
[ "$rc" = 124 ] && say "command timed out after ${timeout_s} s"
exit "$rc"
