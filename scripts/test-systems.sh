#!/usr/bin/env bash
# Real test systems, built offline from Debian packages (no download sites, no loop mount, no
# committed binaries). Each is a raw MBR disk of 64 MiB under $RECLO_DATA_DIR/test-systems/:
#
#   linux-ok      syslinux on a FAT16 partition → a Linux kernel built from Debian's linux-source
#                 (see "kernel" below) + a busybox-static initramfs: brings up its e1000 NIC, sets
#                 10.0.2.15/24 via 10.0.2.2, serves TCP 22 (an SSH-style banner) and 3389 (an X.224
#                 connection confirm, as an RDP server answers), prints a login prompt on the screen
#                 and on the serial console, plus "RECLO-TEST-READY" on serial.
#   no-service    the same system, but it serves nothing (prompt only).
#   kernel-panic  the same kernel with no initramfs and no root: "Kernel panic - not syncing".
#   hang          boots, blanks the screen, prints nothing anywhere and waits forever.
#   no-boot       random bytes with no boot signature: the firmware finds nothing to boot.
#   probe         network like linux-ok, then tries a TCP connection to every host:port named by
#                 `reclo.probe=h:p,h:p,…` on the kernel command line and prints on the serial
#                 console one line each, all probed at once — "PROBE <h:p> OPEN" or "PROBE <h:p> CLOSED <why>" — then
#                 "PROBE DONE". Tests set the list with test/helpers/test-systems.ts (withBootArgs).
#
# Usage: bash scripts/test-systems.sh [NAME…]   (default: all). Prints one "<name> <path>" line each.
# A disk is rebuilt when this script changes (its SHA-256 is the cache stamp). Concurrent runs wait
# for each other (flock). Installs the Debian packages it needs when they are missing (root).
set -euo pipefail

SCRIPT="$(readlink -f "${BASH_SOURCE[0]}")"
ROOT="$(cd "$(dirname "$SCRIPT")/.." && pwd)"
DATA="${RECLO_DATA_DIR:-$ROOT/.data}"
case "$DATA" in /*) ;; *) DATA="$ROOT/$DATA" ;; esac
OUT="$DATA/test-systems"
CACHE="$OUT/cache"
ALL=(linux-ok no-service kernel-panic hang no-boot probe)
DISK_MIB=64

say() { printf '[test-systems] %s\n' "$*" >&2; }
die() {
  say "ERROR: $*"
  exit 1
}

names=("$@")
[[ ${#names[@]} -gt 0 ]] || names=("${ALL[@]}")
for n in "${names[@]}"; do
  [[ " ${ALL[*]} " == *" $n "* ]] || die "unknown test system '$n' (known: ${ALL[*]})"
done

mkdir -p "$OUT" "$CACHE"
exec 9>"$OUT/.lock"
flock -w 900 9 || die "another build holds $OUT/.lock"

STAMP="$(sha256sum "$SCRIPT" | cut -c1-64)"
todo=()
for n in "${names[@]}"; do
  if [[ -f "$OUT/$n.img" && "$(cat "$OUT/$n.stamp" 2>/dev/null)" == "$STAMP" ]]; then continue; fi
  todo+=("$n")
done
if [[ ${#todo[@]} -eq 0 ]]; then
  for n in "${names[@]}"; do printf '%s %s\n' "$n" "$OUT/$n.img"; done
  exit 0
fi

# ---------------------------------------------------------------- tools
need_pkgs=()
have() { command -v "$1" >/dev/null 2>&1; }
have sfdisk || need_pkgs+=(fdisk)
have mkfs.fat || need_pkgs+=(dosfstools)
have mcopy || need_pkgs+=(mtools)
have syslinux || need_pkgs+=(syslinux)
[[ -f /usr/lib/syslinux/mbr/mbr.bin ]] || need_pkgs+=(syslinux-common)
have cpio || need_pkgs+=(cpio)
if [[ ${#need_pkgs[@]} -gt 0 ]]; then
  [[ $(id -u) -eq 0 ]] || die "missing packages: ${need_pkgs[*]} (apt-get install them, or run as root)"
  say "installing ${need_pkgs[*]} (apt-get)…"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq "${need_pkgs[@]}" >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq "${need_pkgs[@]}" >/dev/null; }
fi

# ---------------------------------------------------------------- kernel and busybox from Debian
# The kernel is built from Debian's own kernel source (package linux-source-6.1) with a small
# configuration: what these systems use (serial and VGA text console, initramfs, PCI, e1000 built
# in, IPv4) and little else, gzip-compressed. Debian's distribution kernel (linux-image-amd64)
# booted in 9-10 s of a core under TCG, about half of it unpacking its xz image before the kernel
# printed a line and the rest probing what it carries; this one boots in about 2 s, and the test
# suite boots a test system some two dozen times. The build (4-5 min on two cores) is cached by
# the source version and the configuration below, so editing the rest of this script does not
# rebuild it.
KCONFIG_FRAGMENT='CONFIG_64BIT=y
CONFIG_KERNEL_GZIP=y
CONFIG_PRINTK=y
CONFIG_BUG=y
CONFIG_TTY=y
CONFIG_VT=y
CONFIG_VT_CONSOLE=y
CONFIG_VGA_CONSOLE=y
CONFIG_UNIX98_PTYS=y
CONFIG_SERIAL_8250=y
CONFIG_SERIAL_8250_CONSOLE=y
CONFIG_BLK_DEV_INITRD=y
CONFIG_RD_GZIP=y
CONFIG_BINFMT_ELF=y
CONFIG_BINFMT_SCRIPT=y
CONFIG_PROC_FS=y
CONFIG_SYSFS=y
CONFIG_DEVTMPFS=y
CONFIG_TMPFS=y
CONFIG_SHMEM=y
CONFIG_MULTIUSER=y
CONFIG_FUTEX=y
CONFIG_EPOLL=y
CONFIG_SIGNALFD=y
CONFIG_TIMERFD=y
CONFIG_EVENTFD=y
CONFIG_POSIX_TIMERS=y
CONFIG_PCI=y
CONFIG_ACPI=y
CONFIG_NET=y
CONFIG_INET=y
CONFIG_UNIX=y
CONFIG_PACKET=y
CONFIG_NETDEVICES=y
CONFIG_ETHERNET=y
CONFIG_NET_VENDOR_INTEL=y
CONFIG_E1000=y
CONFIG_PANIC_TIMEOUT=0
CONFIG_BLOCK=y'

source_pkg() { apt-cache depends linux-source 2>/dev/null | sed -n 's/^ *Depends: \(linux-source-[0-9][^ ]*\)$/\1/p' | head -1; }
KSRC_PKG="$(source_pkg)"
if [[ -z $KSRC_PKG ]]; then
  apt-get update -qq >/dev/null 2>&1 || true
  KSRC_PKG="$(source_pkg)"
fi
[[ -n $KSRC_PKG ]] || die "cannot tell which kernel source linux-source depends on (apt-get update?)"

fetch_deb() { # fetch_deb PACKAGE → prints the .deb path in $CACHE
  local pkg=$1 f
  f="$(ls "$CACHE/${pkg}_"*.deb 2>/dev/null | head -1 || true)"
  if [[ -z $f ]]; then
    say "apt-get download $pkg…"
    (cd "$CACHE" && apt-get download -q "$pkg" >/dev/null 2>&1) || die "apt-get download $pkg failed"
    f="$(ls "$CACHE/${pkg}_"*.deb | head -1)"
  fi
  printf '%s\n' "$f"
}

KSRC_DEB="$(fetch_deb "$KSRC_PKG")"
KVER="$(basename "$KSRC_DEB" | cut -d_ -f2 | sed 's/%3a/:/')"
KHASH="$(printf '%s\n%s\n' "$KSRC_DEB" "$KCONFIG_FRAGMENT" | sha256sum | cut -c1-12)"
KDIR="$CACHE/kernel-$KVER-$KHASH"
VMLINUZ="$KDIR/bzImage"
if [[ ! -f "$KDIR/.done" ]]; then
  kneed=()
  have make || kneed+=(make)
  have gcc || kneed+=(gcc)
  have flex || kneed+=(flex)
  have bison || kneed+=(bison)
  have bc || kneed+=(bc)
  have xz || kneed+=(xz-utils)
  [[ -f /usr/include/gelf.h ]] || kneed+=(libelf-dev)
  if [[ ${#kneed[@]} -gt 0 ]]; then
    [[ $(id -u) -eq 0 ]] || die "missing packages to build the test kernel: ${kneed[*]} (apt-get install them, or run as root)"
    say "installing ${kneed[*]} (apt-get)…"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq "${kneed[@]}" >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq "${kneed[@]}" >/dev/null; }
  fi
  say "building the test kernel from $KSRC_PKG $KVER (a few minutes, once)…"
  rm -rf "$KDIR"
  KBUILD="$(mktemp -d "$CACHE/.kbuild.XXXXXX")"
  trap 'rm -rf "$KBUILD"' EXIT
  dpkg-deb --fsys-tarfile "$KSRC_DEB" | tar -xO --wildcards './usr/src/linux-source-*.tar.xz' | tar -xJ -C "$KBUILD" --strip-components=1
  printf '%s\n' "$KCONFIG_FRAGMENT" >"$KBUILD/reclo.config"
  (
    cd "$KBUILD"
    make -s tinyconfig >/dev/null
    # Into a log shown only on failure: olddefconfig warns that KERNEL_GZIP overrides tinyconfig's
    # compression choice, which is the point.
    { ./scripts/kconfig/merge_config.sh -m .config reclo.config && make -s olddefconfig; } >config.log 2>&1 || {
      cat config.log >&2
      die "configuring the test kernel failed"
    }
    while IFS= read -r opt; do
      grep -qx "$opt" .config || die "the test kernel's configuration lost $opt"
    done <reclo.config
    make -s -j"$(nproc)" bzImage >build.log 2>&1 || {
      tail -30 build.log >&2
      die "building the test kernel failed"
    }
  )
  mkdir -p "$KDIR"
  cp "$KBUILD/arch/x86/boot/bzImage" "$VMLINUZ"
  cp "$KBUILD/.config" "$KDIR/config"
  rm -rf "$KBUILD"
  trap - EXIT
  touch "$KDIR/.done"
fi
[[ -f $VMLINUZ ]] || die "no kernel at $VMLINUZ"

BBDIR="$CACHE/busybox"
if [[ ! -f "$BBDIR/.done" ]]; then
  rm -rf "$BBDIR"
  mkdir -p "$BBDIR"
  dpkg-deb -x "$(fetch_deb busybox-static)" "$BBDIR"
  touch "$BBDIR/.done"
fi
BUSYBOX="$BBDIR/bin/busybox"
[[ -x $BUSYBOX ]] || die "no busybox in busybox-static"

# ---------------------------------------------------------------- initramfs per variant
WORK="$(mktemp -d "$OUT/.work.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

# The common part of every /init: mounts, output to screen + serial, the NIC.
init_head() {
  cat <<'EOF'
#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
say() { for t in /dev/tty0 /dev/ttyS0; do printf '%s\n' "$*" >"$t" 2>/dev/null; done; }
serial() { printf '%s\n' "$*" >/dev/ttyS0 2>/dev/null; }
net_up() {
  i=0
  while [ ! -e /sys/class/net/eth0 ] && [ $i -lt 100 ]; do usleep 100000; i=$((i + 1)); done
  ip link set lo up
  ip link set eth0 up
  ip addr add 10.0.2.15/24 dev eth0
  ip route add default via 10.0.2.2
}
forever() { while :; do sleep 3600; done; }
EOF
}

init_for() {
  init_head
  case "$1" in
    linux-ok)
      cat <<'EOF'
net_up
nc -ll -p 22 -e /srv/ssh &
nc -ll -p 3389 -e /srv/rdp &
printf '\033[2J\033[H' >/dev/tty0
say ""
say "ReClo test system (Debian Linux $(uname -r))"
say ""
say "reclo-test login: "
serial "RECLO-TEST-READY"
forever
EOF
      ;;
    no-service)
      cat <<'EOF'
net_up
printf '\033[2J\033[H' >/dev/tty0
say ""
say "ReClo test system (Debian Linux $(uname -r)), no services"
say ""
say "reclo-test login: "
forever
EOF
      ;;
    hang)
      cat <<'EOF'
printf '\033[2J\033[H\033[?25l' >/dev/tty0
forever
EOF
      ;;
    probe)
      cat <<'EOF'
net_up
serial "PROBE START"
for arg in $(cat /proc/cmdline); do
  case "$arg" in reclo.probe=*) list="${arg#reclo.probe=}" ;; esac
done
# All at once: a connection the restricted network drops waits out nc's 5 s, and one after another
# that made a list of eight take 40 s.
i=0
for hp in $(echo "${list:-}" | tr ',' ' '); do
  i=$((i + 1))
  (
    h="${hp%:*}"; p="${hp##*:}"
    # Connected = nc exits 0 (the peer closed) or is still connected when timeout ends it.
    timeout 8 nc -w 5 "$h" "$p" </dev/null >/tmp/probe.$i.out 2>/tmp/probe.$i.err
    rc=$?
    if [ $rc -eq 0 ] || [ $rc -ge 124 ]; then serial "PROBE $hp OPEN"
    else serial "PROBE $hp CLOSED $(tr '\n' ' ' </tmp/probe.$i.err | cut -c1-80)"; fi
  ) &
done
wait
serial "PROBE DONE"
say "reclo-probe login: "
forever
EOF
      ;;
  esac
}

make_initrd() { # make_initrd VARIANT DEST
  local v=$1 dest=$2 d="$WORK/initrd-$1"
  mkdir -p "$d"/{bin,dev,proc,sys,tmp,lib,srv}
  cp "$BUSYBOX" "$d/bin/busybox"
  printf '#!/bin/sh\necho "SSH-2.0-OpenSSH_9.2p1 ReCloTestSystem"\nsleep 2\n' >"$d/srv/ssh"
  # TPKT + X.224 Connection Confirm (what an RDP server sends back to a connection request).
  printf '#!/bin/sh\nprintf "\\003\\000\\000\\023\\016\\320\\000\\000\\022\\064\\000\\002\\037\\010\\000\\002\\000\\000\\000"\nsleep 2\n' >"$d/srv/rdp"
  chmod +x "$d/srv/ssh" "$d/srv/rdp"
  init_for "$v" >"$d/init"
  chmod +x "$d/init"
  (cd "$d" && find . | LC_ALL=C sort | cpio -o -H newc --quiet) | gzip -9n >"$dest"
}

make_disk() { # make_disk NAME APPEND [INITRD]
  local name=$1 append=$2 initrd=${3:-} img="$WORK/$1.img" cfg="$WORK/$1.cfg"
  truncate -s "${DISK_MIB}M" "$img"
  printf 'label: dos\nstart=2048, type=6, bootable\n' | sfdisk -q "$img" >/dev/null
  local blocks=$(((DISK_MIB * 1024 - 1024)))
  mkfs.fat -F 16 -n RECLOTEST --offset 2048 "$img" "$blocks" >/dev/null
  {
    printf 'DEFAULT linux\nPROMPT 0\nTIMEOUT 0\nLABEL linux\n  KERNEL vmlinuz\n'
    [[ -n $initrd ]] && printf '  INITRD initrd.gz\n'
    printf '  APPEND %s\n' "$append"
  } >"$cfg"
  MTOOLS_SKIP_CHECK=1 mcopy -i "$img@@1M" "$VMLINUZ" ::vmlinuz
  MTOOLS_SKIP_CHECK=1 mcopy -i "$img@@1M" "$cfg" ::syslinux.cfg
  [[ -n $initrd ]] && MTOOLS_SKIP_CHECK=1 mcopy -i "$img@@1M" "$initrd" ::initrd.gz
  syslinux --offset 1048576 --install "$img"
  dd if=/usr/lib/syslinux/mbr/mbr.bin of="$img" conv=notrunc bs=440 count=1 status=none
}

BASE_APPEND="console=tty0 console=ttyS0,115200 panic=0"
for n in "${todo[@]}"; do
  say "building $n (kernel $KVER)…"
  case "$n" in
    linux-ok | no-service | hang | probe)
      make_initrd "$n" "$WORK/$n.initrd.gz"
      make_disk "$n" "$BASE_APPEND quiet" "$WORK/$n.initrd.gz"
      ;;
    kernel-panic)
      # No initramfs and no root device: the kernel cannot mount a root and panics.
      make_disk "$n" "$BASE_APPEND"
      ;;
    no-boot)
      head -c $((4 * 1024 * 1024)) /dev/urandom >"$WORK/$n.img"
      printf '\000\000' | dd of="$WORK/$n.img" bs=1 seek=510 conv=notrunc status=none
      truncate -s "${DISK_MIB}M" "$WORK/$n.img"
      ;;
  esac
  mv -f "$WORK/$n.img" "$OUT/$n.img"
  printf '%s\n' "$STAMP" >"$OUT/$n.stamp"
done
for n in "${names[@]}"; do printf '%s %s\n' "$n" "$OUT/$n.img"; done
