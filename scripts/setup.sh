#!/usr/bin/env bash
# Installs the Debian packages rmai-testbed builds and runs with, only when one is missing.
# Called by the README's commands (through scripts/build.sh); safe to run again.
#
#   scripts/setup.sh            the build and test packages
#   scripts/setup.sh softroce   the host side of scripts/softroce/run.sh instead: QEMU (TCG, no KVM
#                               needed), debootstrap and the initramfs tools; optional, only that
#                               script asks for it
#   scripts/setup.sh slurm      Slurm and MUNGE for tests/slurm/run.sh's one-node cluster instead;
#                               optional, only that test asks for it (and skips without them)
set -euo pipefail

packages=(
  cmake g++ make pkg-config
  libsimgrid-dev          # the discrete-event engine (SimGrid 3.32, found with pkg-config)
  libboost-dev            # SimGrid's public headers need Boost
  libboost-context-dev    # sim/node_fibers.cpp: the fast path runs the nodes as fibers
  libeigen3-dev
  libyaml-cpp-dev         # experiment YAML and presets
  nlohmann-json3-dev      # summary.json
  libzstd-dev             # switches.csv.zst (rmai run --switches ...,zstd)
  libcli11-dev            # cli/: the one command-line parser of every rmai subcommand
  libgtest-dev libgmock-dev
  libbenchmark-dev
  libfabric-dev           # emul/: the memory server's one-sided RMA reads (tcp, shm, verbs providers)
  liburing-dev            # emul/: the disk-read baseline at queue depth > 1
  iproute2                # rmai validate --sharing: ip (network namespace, veth pair) and tc (tbf shaping)
  clang libclang-rt-14-dev  # tests/fuzz: libFuzzer with ASan/UBSan (skipped when missing)
  python3-matplotlib      # plots/
)

if [ "${1:-}" = softroce ]; then
  packages=(
    qemu-system-x86         # boots Debian's stock kernel, which has rdma_rxe, under TCG
    debootstrap             # the guest root, from the mirror of this machine's apt sources
    cpio gzip               # the guest root packed as an initramfs
    debian-archive-keyring  # debootstrap checks the archive's signatures
  )
fi

if [ "${1:-}" = slurm ]; then
  packages=(
    slurmctld     # the controller: queues the job array, hands its tasks to the node
    slurmd        # the node's daemon: runs each task (slurmstepd); slurmd -C reports the node's CPUs and memory
    slurm-client  # sbatch, squeue, sinfo, scontrol
    munge         # munged and mungekey: the credentials Slurm's daemons and clients sign their messages with
  )
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "setup: installing ${missing[*]}" >&2
if [ "$(id -u)" -ne 0 ]; then sudo=sudo; else sudo=; fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
