#!/usr/bin/env bash
# `rmai sweep --emit slurm` against a real Slurm (CTest test "slurm", label slurm): a one-node
# cluster on this machine, in a temporary folder of its own, runs the emitted job array; its
# collected results.csv must equal the same sweep's run locally.
#
#   tests/slurm/run.sh [RMAI]      (default build/bin/rmai)
#
# 1. Slurm and MUNGE (slurmctld, slurmd, the client commands, munged): installed with
#    `scripts/setup.sh slurm` when missing, as root (Debian's slurm-wlm packages).
# 2. The cluster, in $TMPDIR/rmai-slurm-test.XXXXXX: its own MUNGE key and munged (its socket in the
#    folder, which slurm.conf names with AuthInfo=socket=...), its own slurm.conf (SlurmctldHost this
#    machine at 127.0.0.1, one node "rmai-test" with the CPUs and memory `slurmd -C` reports, the
#    cluster's ports picked free, state, spool, pid and log files in the folder), slurmctld and
#    slurmd; ready when sinfo says the node is idle. Nothing of a system Slurm or MUNGE is used: the
#    daemons run with -f and --socket, clients with SLURM_CONF. (Installing Debian's munge package
#    in step 1 creates /etc/munge/munge.key and, where an init system runs, starts the system's
#    munged: the package's doing, which this test neither uses nor stops.)
# 3. The sweep: experiments/quickstart.yaml with 32 tokens, memory.tier x cache.gpu_experts (4
#    points), `--emit slurm` into a folder whose name has a space and a '%' (both need care in an
#    #SBATCH line), sbatch, squeue polled until every task ended (all COMPLETED, each task's log
#    says its point is ok), `--collect`; then the same sweep without --emit. The two results.csv
#    must be the same table but for wall_time_s (the wall-clock time each run measured).
# 4. On exit, whatever the reason (success, failure, INT, TERM, a step's timeout): slurmd,
#    slurmctld and munged are stopped by their pid files (each checked to be ours), anything still
#    carrying the cluster's mark in its environment (slurmstepd, the job's processes) is killed,
#    and the folder is removed. A run killed with SIGKILL leaves them; the next run ends them first
#    (a folder whose lock nobody holds).
#
# Exit status: 0 the tables match; 1 they do not, or a step failed (sbatch refused the script, a
# task failed, rmai failed); 77 skipped, with the reason: not root (slurmd launches the jobs), the
# packages missing and not installable, the daemons not starting (their log is printed), or
# RMAI_SLURM=0. RMAI_SLURM_REQUIRED=1 turns a skip for a daemon that did not start into a failure.
# Every step has a timeout; the whole run, without the installation, at most RMAI_SLURM_TIMEOUT
# seconds (default 240).
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
rmai=${1:-$top/build/bin/rmai}
export PATH=$PATH:/usr/sbin:/sbin
export LC_ALL=C

say() { echo "slurm: $*" >&2; }
skip() { say "skipped: $*"; exit 77; }
fail() { say "FAILED: $*"; exit 1; }
# A daemon that does not come up: the machine's doing, not rmai's (unless RMAI_SLURM_REQUIRED=1).
unavailable() {
  say "$*"
  [ "${RMAI_SLURM_REQUIRED:-0}" = 1 ] && fail "the cluster did not start (RMAI_SLURM_REQUIRED=1)"
  skip "the one-node cluster could not be started here"
}

# --- stopping a cluster: this run's, or one a run killed with SIGKILL left --------------------------
mark=RMAI_SLURM_TEST_STATE   # in the environment of every daemon, and so of the jobs, of the cluster
# The PIDs whose environment holds the mark of cluster $1.
marked() { grep -lzxF "$mark=$1" /proc/[0-9]*/environ 2>/dev/null | cut -d/ -f3 || true; }
# The PID in pid file $2, if that process is one of cluster $1's (its command line names the folder).
ours() {
  local pid
  pid=$(cat "$2" 2>/dev/null) || return 0
  case $pid in '' | *[!0-9]*) return 0 ;; esac
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF "$1/" && echo "$pid"
  return 0
}
alive() { local p; for p; do kill -0 "$p" 2>/dev/null && return 0; done; return 1; }
stop_cluster() {
  local state=$1 pids p i
  # TERM by the pid files, slurmd first (no job starts any more), munged last; KILL after 10 s.
  pids="$(ours "$state" "$state/slurmd.pid") $(ours "$state" "$state/slurmctld.pid") $(ours "$state" "$state/munge/munged.pid")"
  for p in $pids; do kill -TERM "$p" 2>/dev/null || true; done
  for i in $(seq 40); do
    alive $pids || break
    sleep 0.25
  done
  # What is left: a daemon that ignored TERM, slurmstepd and the job's processes.
  for p in $pids $(marked "$state"); do kill -KILL "$p" 2>/dev/null || true; done
  for i in $(seq 20); do [ -z "$(marked "$state")" ] && break; sleep 0.25; done
  [ -z "$(marked "$state")" ] || say "warning: still running after KILL: $(marked "$state" | tr '\n' ' ')"
  rm -rf "$state"
}

[ "${RMAI_SLURM:-1}" = 0 ] && skip "RMAI_SLURM=0"
[ "$(id -u)" -eq 0 ] || skip "needs root (slurmd launches the jobs and switches to their user)"

# An outer Slurm job's settings (SBATCH_PARTITION, SLURM_JOB_ID, ...) must not reach this cluster.
for v in $(compgen -e); do
  case $v in SLURM_* | SBATCH_* | SALLOC_* | SRUN_* | SQUEUE_* | SINFO_* | SCONTROL_* | SACCT_*) unset "$v" ;; esac
done

parent=${TMPDIR:-/tmp}
case $parent in *[[:space:]]* | '') parent=/tmp ;; esac   # slurm.conf paths cannot hold spaces
# Clusters of earlier runs killed with SIGKILL: their folder's lock is free (a live run holds its own;
# looked at twice, 1 s apart, in case a run is between creating its folder and locking it).
for old in "$parent"/rmai-slurm-test.*; do
  [ -f "$old/lock" ] || continue
  flock -n "$old/lock" true 2>/dev/null || continue
  sleep 1
  flock -n "$old/lock" true 2>/dev/null || continue
  say "stopping the cluster a killed run left in $old"
  stop_cluster "$old"
done

[ -x "$rmai" ] || fail "$rmai is not built"
rmai=$(cd "$(dirname "$rmai")" && pwd)/$(basename "$rmai")

# --- 1. the packages ---------------------------------------------------------------------------------
needed=(munged munge unmunge slurmctld slurmd sbatch sinfo squeue scontrol python3 flock timeout)
missing() { local c; for c in "${needed[@]}"; do command -v "$c" >/dev/null || echo "$c"; done; }
if [ -n "$(missing)" ]; then
  say "installing Slurm and MUNGE (scripts/setup.sh slurm): missing $(missing | tr '\n' ' ')"
  timeout -k 10 300 "$top/scripts/setup.sh" slurm >&2 || skip "scripts/setup.sh slurm failed (no package archive?)"
  [ -z "$(missing)" ] || skip "still missing after scripts/setup.sh slurm: $(missing | tr '\n' ' ')"
fi

budget=${RMAI_SLURM_TIMEOUT:-240}
deadline=$((SECONDS + budget))
# The timeout of a step of at most $1 seconds: less when the run's deadline is nearer.
limit() {
  local left=$((deadline - SECONDS))
  if [ "$left" -lt "$1" ]; then echo $((left > 1 ? left : 1)); else echo "$1"; fi
}
# `within CAP COMMAND...`: COMMAND under that timeout (KILL 5 s after the TERM).
within() { timeout -k 5 "$(limit "$1")" "${@:2}"; }
# The same for a long command, as a background job, so that a signal's trap runs at once; the EXIT
# trap TERMs it (timeout passes the TERM on, and KILLs 5 s later).
job() {
  local t
  t=$(limit "$1")
  shift
  timeout -k 5 "$t" "$@" 9>&- &
  wait $!
}

# --- 2. the cluster ------------------------------------------------------------------------------------
state=$(mktemp -d "$parent/rmai-slurm-test.XXXXXX") || unavailable "cannot make a folder in $parent"
cleanup() {
  local status=$? p
  trap '' INT TERM HUP
  set +e
  for p in $(jobs -pr); do kill -TERM "$p" 2>/dev/null; done
  wait 2>/dev/null
  stop_cluster "$state"
  say "stopped the cluster, removed $state (${SECONDS} s in all)"
  exit "$status"
}
trap cleanup EXIT
trap 'say "interrupted"; exit 130' INT
trap 'say "terminated"; exit 143' TERM
trap 'say "hung up"; exit 129' HUP
exec 9>"$state/lock"   # held until this script ends; closed (9>&-) for the daemons and jobs
flock -n 9

chmod 755 "$state"   # munged wants its socket's folder, and every folder above it, searchable by all
mkdir -m 755 "$state/munge" "$state/ctld" "$state/spool" "$state/log" "$state/sweeps"
logs() {   # the daemons' logs, on a failure
  local f
  for f in "$state/munge/munged.log" "$state/log/slurmctld.log" "$state/log/slurmd.log"; do
    [ -s "$f" ] && { echo "--- $f (last lines)"; tail -n 25 "$f"; } >&2
  done
  return 0
}

# MUNGE: a key and a munged of the cluster's own.
if command -v mungekey >/dev/null; then
  within 10 mungekey --create --keyfile="$state/munge/munge.key"
else
  head -c 1024 /dev/urandom >"$state/munge/munge.key"
fi
chmod 600 "$state/munge/munge.key"
socket=$state/munge/munge.sock
within 15 env "$mark=$state" munged --socket="$socket" --key-file="$state/munge/munge.key" \
  --pid-file="$state/munge/munged.pid" --log-file="$state/munge/munged.log" \
  --seed-file="$state/munge/munged.seed" 9>&- || { logs; unavailable "munged did not start"; }
within 10 munge -n -S "$socket" | within 10 unmunge -S "$socket" >/dev/null ||
  { logs; unavailable "munged does not answer on $socket"; }
say "munged up ($socket)"

# The node as slurmd sees this machine: CPUs, boards, sockets, cores, threads, RealMemory.
hardware=$(within 20 slurmd -C | head -n 1) || unavailable "slurmd -C failed"
hardware=$(tr ' ' '\n' <<<"$hardware" | grep -E '^(CPUs|Boards|SocketsPerBoard|CoresPerSocket|ThreadsPerCore|RealMemory)=' | paste -sd ' ')
[[ $hardware == *CPUs=* ]] || unavailable "slurmd -C reported no CPUs"
host=$(hostname -s 2>/dev/null || hostname)
export SLURM_CONF=$state/slurm.conf

# Ports: two the kernel says are free now (another process may take one before slurmctld binds it:
# then the cluster is started again, with new ones, up to 3 times).
free_ports() {
  python3 -c 'import socket
s = [socket.socket() for _ in range(2)]
for x in s: x.bind(("127.0.0.1", 0))
print(*[x.getsockname()[1] for x in s])'
}
write_conf() {
  cat >"$SLURM_CONF" <<EOF
# A one-node cluster for tests/slurm/run.sh; everything it writes is under $state.
ClusterName=rmaitest
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$1
SlurmdPort=$2
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$socket
StateSaveLocation=$state/ctld
SlurmdSpoolDir=$state/spool
SlurmctldPidFile=$state/slurmctld.pid
SlurmdPidFile=$state/slurmd.pid
SlurmctldLogFile=$state/log/slurmctld.log
SlurmdLogFile=$state/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/builtin
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
ReturnToService=2
MinJobAge=300
MailProg=/bin/true
NodeName=rmai-test NodeAddr=127.0.0.1 NodeHostname=$host $hardware State=UNKNOWN
PartitionName=rmai Nodes=rmai-test Default=YES MaxTime=INFINITE State=UP
EOF
}
node_state() { within 10 sinfo -h -n rmai-test -o %T 2>/dev/null | head -n 1 || true; }
up=0
for attempt in 1 2 3; do
  read -r ctld_port slurmd_port < <(free_ports)
  write_conf "$ctld_port" "$slurmd_port"
  rm -f "$state/log/"*.log
  within 30 env "$mark=$state" slurmctld -f "$SLURM_CONF" 9>&- || true
  within 30 env "$mark=$state" slurmd -f "$SLURM_CONF" -N rmai-test 9>&- || true
  t0=$SECONDS st=
  while [ $((SECONDS - t0)) -lt 30 ] && [ $SECONDS -lt $deadline ]; do
    st=$(node_state)
    [ "$st" = idle ] && { up=1; break 2; }
    # A daemon gone (given 5 s to write its pid file): no use waiting.
    if [ $((SECONDS - t0)) -ge 5 ]; then
      [ -n "$(ours "$state" "$state/slurmctld.pid")" ] && [ -n "$(ours "$state" "$state/slurmd.pid")" ] || break
    fi
    sleep 0.5
  done
  if grep -qs 'Address already in use' "$state/log/slurmctld.log" "$state/log/slurmd.log"; then
    say "attempt $attempt: a port was taken ($ctld_port, $slurmd_port); again with others"
    for p in $(ours "$state" "$state/slurmd.pid") $(ours "$state" "$state/slurmctld.pid"); do kill -KILL "$p" 2>/dev/null || true; done
    sleep 1
    continue
  fi
  break
done
if [ "$up" != 1 ]; then
  logs
  unavailable "the node did not become idle (state \"${st:-none}\"; slurmctld $(ours "$state" "$state/slurmctld.pid"), slurmd $(ours "$state" "$state/slurmd.pid"))"
fi
say "cluster up: slurmctld on 127.0.0.1:$ctld_port, node rmai-test ($hardware) idle ($SECONDS s)"

# --- 3. the sweep, through Slurm and locally ---------------------------------------------------------
sweep=("$top/experiments/quickstart.yaml" --set trace.tokens=32 --sweep memory.tier=dram,rmai
  --sweep cache.gpu_experts=64,128)
points=4
out="$state/sweeps/slurm 50%"   # a space and a '%': the #SBATCH line must quote and escape them
local_out=$state/sweeps/local

job 60 "$rmai" sweep "${sweep[@]}" --emit slurm --out "$out" >&2 || fail "rmai sweep --emit slurm failed"
[ -f "$out/sweep.slurm" ] || fail "no $out/sweep.slurm"
[ -e "$out/p0000" ] && fail "--emit slurm ran a point"
jobid=$(cd "$state" && within 30 env "$mark=$state" sbatch --parsable "$out/sweep.slurm" 9>&-) ||
  { cat "$out/sweep.slurm" >&2; fail "sbatch refused $out/sweep.slurm"; }
jobid=${jobid%%;*}
say "submitted job array $jobid ($points tasks)"

# Until every task has ended: squeue -t all lists the finished ones too (for MinJobAge).
final='^(COMPLETED|FAILED|CANCELLED|TIMEOUT|NODE_FAIL|OUT_OF_MEMORY|BOOT_FAIL|DEADLINE|PREEMPTED)$'
while :; do
  tasks=$(within 10 squeue -h -t all -j "$jobid" -o '%K %T' 2>/dev/null) || tasks=
  if [ "$(wc -l <<<"$tasks")" -eq "$points" ] && [ -z "$(awk '{print $2}' <<<"$tasks" | grep -Ev "$final")" ]; then
    break
  fi
  if [ $SECONDS -ge $deadline ]; then
    printf '%s\n' "$tasks" >&2
    logs
    fail "the job array did not end within RMAI_SLURM_TIMEOUT=$budget s"
  fi
  sleep 0.5
done
say "job array ended ($SECONDS s): $(sort -n <<<"$tasks" | tr ' \n' '= ')"
bad=$(awk '$2 != "COMPLETED"' <<<"$tasks")
for i in $(seq 0 $((points - 1))); do
  log=$out/slurm-${jobid}_$i.out
  [ -f "$log" ] || fail "task $i wrote no $log"
  grep -q "p000$i ok" "$log" || bad="$bad${bad:+$'\n'}task $i: $(tail -n 3 "$log")"
done
[ -z "$bad" ] || { logs; fail "tasks failed:"$'\n'"$bad"; }

job 30 "$rmai" sweep --collect "$out" >&2 || fail "rmai sweep --collect failed"
job 120 "$rmai" sweep "${sweep[@]}" --out "$local_out" --jobs 2 >&2 || fail "the local sweep failed"

# The same table, but for the wall-clock time each run measured.
python3 - "$out/results.csv" "$local_out/results.csv" "$points" <<'EOF' || fail "the results differ"
import csv, sys
slurm, local = (list(csv.reader(open(path, newline=""))) for path in sys.argv[1:3])
points, ignored = int(sys.argv[3]), {"wall_time_s"}
def fail(why):
    print("slurm: " + why, file=sys.stderr)
    sys.exit(1)
if slurm[0] != local[0]:
    fail("the columns differ:\n  slurm %s\n  local %s" % (slurm[0], local[0]))
header = slurm[0]
if len(slurm) != points + 1 or len(local) != points + 1:
    fail("%d and %d rows, not %d" % (len(slurm) - 1, len(local) - 1, points))
if "status" not in header or len(header) < 10:
    fail("too few columns: %s" % header)
diffs = []
for a, b in zip(slurm[1:], local[1:]):
    row = dict(zip(header, a))
    if row["status"] != "ok":
        diffs.append("%s: status %s" % (row["point"], row["status"]))
    diffs += ["%s: %s: slurm %r, local %r" % (row["point"], key, x, y)
              for key, x, y in zip(header, a, b) if x != y and key not in ignored]
if diffs:
    fail("results.csv differs:\n  " + "\n  ".join(diffs))
print("slurm: results.csv: %d points x %d columns equal (but %s)" % (points, len(header), ", ".join(sorted(ignored))),
      file=sys.stderr)
EOF
say "passed ($SECONDS s)"
