#!/usr/bin/env bash
# Builds the SoftRoCE guest: Debian's stock kernel (which ships rdma_rxe; this machine's own kernel
# has no RDMA) and a debootstrap'ed minbase root packed as an initramfs, from Debian packages only.
#
#   scripts/softroce/guest.sh [BUILD_DIR]    prints the guest's folder on stdout
#
# BUILD_DIR (default build/) holds the binaries whose libraries the guest must carry. The guest is
# cached outside the clone, so clean clones on one machine (CI) share it: in
# ${RMAI_SOFTROCE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/rmai-softroce}/<kernel-version>-<hash>/
# (vmlinuz, initrd.gz, packages.txt), the hash being that of this script (its package list and
# recipe), and rebuilt only when missing or lacking a package now wanted. Entries unused for 30 days
# are removed. Exit 77 when the environment cannot provide it (no apt sources, no access to the
# package archive), 1 on other failures, 130/143 on INT/TERM (nothing left mounted or running).
# The guest's /init is not in here: run.sh appends it at each boot (the kernel unpacks concatenated
# cpio archives in order), so changing scripts/softroce/init needs no rebuild.
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-$top/build}
# Outside the clone by default (a clean clone has no build/); without a HOME, next to the binaries.
if [ -n "${RMAI_SOFTROCE_CACHE:-}" ]; then cache=$RMAI_SOFTROCE_CACHE
elif [ -n "${XDG_CACHE_HOME:-}" ]; then cache=$XDG_CACHE_HOME/rmai-softroce
elif [ -n "${HOME:-}" ]; then cache=$HOME/.cache/rmai-softroce
else cache=$build/softroce; fi
# Any change to this script (packages, trimming, packing) makes a new entry: no recipe to bump.
hash=$(sha256sum "$0" | cut -c1-12)

say() { echo "softroce: $*" >&2; }
unavailable() { say "environment unavailable: $*"; exit 77; }

# The guest's packages. rdma-core brings rdma(8) and the rxe provider of libibverbs; the project's
# runtime libraries are the runtime counterparts of scripts/setup.sh's -dev packages (the
# header-only ones need nothing), completed below from ldd of already built binaries.
packages=(
  rdma-core ibverbs-providers ibverbs-utils rdmacm-utils perftest
  libfabric1 libfabric-bin       # libfabric's verbs provider and fi_info
  kmod iproute2                  # modprobe, ip, and rdma(8) lives in iproute2
  procps                         # ps/pkill for commands that start servers in the background
  libsimgrid3.32 libyaml-cpp0.7 liburing2 libbenchmark1debian libstdc++6
)

# The shared libraries the built binaries load (ldd is quick; mapping them to packages is not).
libs=
if compgen -G "$build/bin/*" >/dev/null; then
  libs=$(for b in "$build"/bin/*; do [ -x "$b" ] && ldd "$b" 2>/dev/null; done |
    awk '$2 == "=>" && $3 ~ /^\// {print $3}' | sort -u)
fi
# Adds the Debian packages owning those libraries (dpkg -S on this machine, which runs the same
# release), so a new dependency of the project cannot be forgotten in the guest.
add_library_packages() {
  local lib owner
  for lib in $libs; do
    owner=$(dpkg -S "$lib" 2>/dev/null || dpkg -S "$(readlink -f "$lib")" 2>/dev/null || true)
    owner=${owner%%:*}
    [ -n "$owner" ] && packages+=("$owner")
  done
  mapfile -t packages < <(printf '%s\n' "${packages[@]}" | sort -u)
}

# The stock kernel's concrete package (linux-image-amd64 is a metapackage whose version moves with
# updates), looked up now. The cache is keyed by it. Offline, the newest cached guest still serves.
kernel_package() { apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}'; }
kpkg=$(kernel_package || true)
if [ -z "$kpkg" ]; then
  cached=$(ls -d "$cache"/*-"$hash"/initrd.gz 2>/dev/null | sort -V | tail -1 || true)
  [ -n "$cached" ] && { dirname "$cached"; exit 0; }
  say "apt knows no linux-image-amd64; running apt-get update"
  timeout 300 apt-get update -qq || unavailable "apt-get update failed (no access to the package archive?)"
  kpkg=$(kernel_package || true)
  [ -n "$kpkg" ] || unavailable "no linux-image-amd64 in this machine's apt sources"
fi
kver=${kpkg#linux-image-}
out=$cache/$kver-$hash
mkdir -p "$cache" || unavailable "cannot create the guest cache $cache (RMAI_SOFTROCE_CACHE?)"
# Marks an entry used (the prune below goes by modification time) and prints it.
serve() { touch "$out"; echo "$out"; exit 0; }

# Cached, for these libraries (or for packages covering them): done.
cached() { [ -f "$out/initrd.gz" ] && [ -f "$out/vmlinuz" ] && [ -f "$out/packages.txt" ]; }
if cached && [ -z "$(comm -23 <(printf '%s\n' $libs) <(sort -u "$out/libs.txt" 2>/dev/null))" ]; then
  serve
fi
add_library_packages
if cached && [ -z "$(comm -23 <(printf '%s\n' "${packages[@]}") "$out/packages.txt")" ]; then
  touch "$out/libs.txt"
  printf '%s\n' $libs | sort -u -o "$out/libs.txt" - "$out/libs.txt"   # known now: no dpkg -S next time
  serve
fi

[ "$(id -u)" -eq 0 ] || unavailable "building the guest needs root (debootstrap, chroot)"

# From here on, long steps run as background jobs that the script waits for: bash runs a trap only
# once the foreground command has ended (debootstrap: minutes), but interrupts a wait at once.
work='' locked=''
# The output goes with the job, not the call: a trap runs inside the call's redirections.
job() {   # [--out FILE | --log FILE] COMMAND...: stdout, or stdout and stderr, to FILE
  case $1 in
    --out) local f=$2; shift 2; "$@" >"$f" & ;;
    --log) local f=$2; shift 2; "$@" >"$f" 2>&1 & ;;
    *) "$@" & ;;
  esac
  wait $!
}
# Mount points under the build folder (debootstrap mounts proc and sys in its target, and bind
# mounts /dev entries inside containers).
mounts_under() { awk -v w="$1" 'index($5, w "/") == 1 {print $5}' /proc/self/mountinfo | sort -r; }
cleanup() {
  local status=$? p
  trap '' INT TERM   # a second signal must not cut the cleanup short
  # Every job still running (debootstrap under timeout, which passes TERM on to its process group,
  # so to debootstrap's dpkg and chroot children): ended, and waited for, before unmounting.
  for p in $(jobs -pr); do kill -TERM "$p" 2>/dev/null || true; done
  for _ in $(seq 20); do [ -z "$(jobs -pr)" ] && break; sleep 0.5; done
  for p in $(jobs -pr); do kill -KILL "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ -n "$work" ]; then
    for m in $(mounts_under "$work"); do umount "$m" 2>/dev/null || umount -l "$m" || true; done
    if [ -n "$(mounts_under "$work")" ]; then
      say "still mounted under $work, left in place: $(mounts_under "$work" | tr '\n' ' ')"
    else
      # --one-file-system: never into a mount that escaped the check above (a bind of /dev/shm).
      rm -rf --one-file-system "$work"
    fi
  fi
  [ -n "$locked" ] && rm -rf "$out.tmp"   # only the lock's holder may have written it
  exit "$status"
}
trap cleanup EXIT
trap 'say "interrupted"; exit 130' INT
trap 'say "terminated"; exit 143' TERM

# One build per entry at a time (clean clones of one machine share the cache); the other waits,
# then finds the guest built.
exec 9>"$cache/.lock-$kver-$hash"
job flock -w 1800 9 || { say "another guest build held $cache/.lock-$kver-$hash for 30 min"; exit 1; }
locked=1
if cached && [ -z "$(comm -23 <(printf '%s\n' "${packages[@]}") "$out/packages.txt")" ]; then serve; fi

job timeout 900 "$top/scripts/setup.sh" softroce || unavailable "could not install qemu-system-x86/debootstrap with apt"

# The mirror and release, read from this machine's apt sources at run time (deb822 .sources or
# one-line sources.list): the first "deb" source carrying the release's main suite. No archive's
# host name is written anywhere in the project.
. /etc/os-release
suite=${VERSION_CODENAME:?no VERSION_CODENAME in /etc/os-release}
mirror_from_sources() {
  local f
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    # Paragraphs are separated by blank lines; take URIs of a paragraph whose Types has deb and
    # whose Suites has the release itself.
    awk -v suite="$suite" '
      function flush() { if (deb && has && uri != "") { print uri; found = 1; exit } deb = has = 0; uri = "" }
      /^[[:space:]]*$/ { flush(); next }
      /^[[:space:]]*#/ { next }
      tolower($1) == "types:" { for (i = 2; i <= NF; i++) if ($i == "deb") deb = 1 }
      tolower($1) == "uris:" { uri = $2 }
      tolower($1) == "suites:" { for (i = 2; i <= NF; i++) if ($i == suite) has = 1 }
      END { if (!found) flush() }' "$f"
  done
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -f "$f" ] || continue
    # deb [options] URI SUITE COMPONENTS...
    awk -v suite="$suite" '$1 == "deb" { i = 2; if ($i ~ /^\[/) while ($i !~ /\]$/) i++; if ($i ~ /^\[/ || $i ~ /\]$/) i++; if ($(i+1) == suite) print $i }' "$f"
  done
}
# RMAI_SOFTROCE_MIRROR overrides it (another mirror, or a local one).
mirror=${RMAI_SOFTROCE_MIRROR:-$(mirror_from_sources | head -1)}
[ -n "$mirror" ] || unavailable "no 'deb' source for $suite in /etc/apt/sources.list{,.d/*.sources}"

work=$(mktemp -d "$cache/.build.XXXXXX")
chmod 755 "$work"   # apt-get download hands the file to its _apt user
root=$work/root

say "building the guest for kernel $kver in $out (debootstrap, a few minutes)"
start=$(date +%s)
include=$(IFS=,; echo "${packages[*]}")
if ! job --log "$work/debootstrap.log" timeout 1800 debootstrap --variant=minbase --include="$include" "$suite" "$root" "$mirror"; then
  tail -20 "$work/debootstrap.log" >&2
  if grep -qiE "Failed getting release file|couldn't download|Could not resolve|Connection (refused|timed out)|Temporary failure" "$work/debootstrap.log"; then
    unavailable "debootstrap could not reach the package archive (the mirror of this machine's apt sources, or RMAI_SOFTROCE_MIRROR)"
  fi
  say "debootstrap failed (log above)"
  exit 1
fi

# The kernel: downloaded through this machine's apt (its sources include the security suite, where
# kernel updates land) and unpacked, not installed: no initramfs-tools, no postinst in the guest.
say "fetching $kpkg"
job env -C "$work" timeout 600 apt-get download -qq "$kpkg" || unavailable "apt-get download $kpkg failed (no access to the package archive?)"
dpkg-deb -x "$work"/"$kpkg"_*.deb "$work/kernel"
mkdir -p "$out.tmp"
cp "$work/kernel/boot/vmlinuz-$kver" "$out.tmp/vmlinuz"

# The modules, less the big subtrees a guest without hardware never loads (graphics, media, sound,
# wireless, NIC and storage drivers): the whole tree (~390 MB) would double the initramfs, which the
# kernel unpacks slowly under TCG. Dependencies are not declared all the way (rdma_cm needs
# configfs, rxe needs crc32), so exclude rather than include, and check the closure below.
mods=$work/kernel/lib/modules/$kver
needed=(crc32_generic crc32_pclmul rdma_rxe ib_uverbs rdma_ucm dummy virtio_pci 9pnet_virtio 9p)
mkdir -p "$root/lib/modules"
cp -a "$mods" "$root/lib/modules/"
chroot "$root" depmod -a "$kver"
# What the needed modules load, from the whole tree's dependencies ("insmod PATH" lines).
closure=$(chroot "$root" modprobe -S "$kver" --show-depends -a "${needed[@]}" | awk '$1 == "insmod" {print $2}' | sort -u)
for sub in drivers/gpu drivers/media drivers/net/wireless drivers/net/ethernet drivers/scsi drivers/usb \
  drivers/iio drivers/staging drivers/hwmon drivers/comedi drivers/bluetooth drivers/isdn \
  drivers/infiniband/hw sound; do
  rm -rf "$root/lib/modules/$kver/kernel/$sub"
done
chroot "$root" depmod -a "$kver"
for f in $closure; do
  [ -f "$root$f" ] || { say "the trimmed module tree lost $f, which /init needs"; exit 1; }
done

# Trim what a guest that lives in RAM never reads.
rm -rf "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/locale/* "$root"/usr/share/info/* \
  "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*

say "packing the initramfs"
job --out "$out.tmp/initrd.gz" bash -c 'cd "$1" && find . -xdev -print0 | cpio --null -o -H newc --quiet | gzip -6' pack "$root"
printf '%s\n' "${packages[@]}" >"$out.tmp/packages.txt"
echo "$kpkg" >"$out.tmp/kernel-package.txt"
printf '%s\n' $libs | sort -u >"$out.tmp/libs.txt"
rm -rf "$out"
mv "$out.tmp" "$out"
say "guest ready in $(($(date +%s) - start)) s: $(du -h "$out/initrd.gz" | cut -f1) initramfs"
# Entries of other kernels or other versions of this script, unused for 30 days.
find "$cache" -mindepth 1 -maxdepth 1 -type d -name '*-*' ! -name '.*' -mtime +30 -exec rm -rf --one-file-system {} + 2>/dev/null || true
find "$cache" -mindepth 1 -maxdepth 1 -type f -name '.lock-*' -mtime +30 -delete 2>/dev/null || true
echo "$out"
