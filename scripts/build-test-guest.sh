#!/usr/bin/env bash
# Builds the tiny Linux test guest (vmlinuz + initrd.cpio.gz + manifest.json) that integration tests boot,
# following shared/design/TEST-GUEST.md. Packages are unpacked into a temp dir; nothing is installed on the host.
# The output dir is reused while its manifest matches the request; --force rebuilds it.
set -euo pipefail

usage() {
  cat <<'EOF'
usage: build-test-guest.sh [--force] [OUT_DIR]

OUT_DIR defaults to ${VIRTQ_TEST_GUEST_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/virtq/test-guest}.
Environment:
  TG_EXTRA_MODULES  more kernel modules for the initrd, e.g. "virtio_net virtio_scsi"
  TG_KERNEL_META    kernel meta package (default linux-image-cloud-amd64)
EOF
}

die() { echo "build-test-guest: $*" >&2; exit 1; }
say() { echo "build-test-guest: $*" >&2; }

FORCE=0
OUT=""
for arg in "$@"; do
  case $arg in
    --force) FORCE=1 ;;
    -h|--help) usage; exit 0 ;;
    -*) usage >&2; die "unknown option $arg" ;;
    *) [[ -z $OUT ]] || die "more than one output dir given"; OUT=$arg ;;
  esac
done
OUT=${OUT:-${VIRTQ_TEST_GUEST_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/virtq/test-guest}}
KERNEL_META=${TG_KERNEL_META:-linux-image-cloud-amd64}
# modprobe pulls in dependencies itself, so this order is for readability only.
MODULES="button evdev virtio virtio_ring virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci virtio_blk virtio_net"
MODULES=$(echo $MODULES ${TG_EXTRA_MODULES:-})
# Bump ROOTFS when /init or the helpers change, so a cached guest without them is rebuilt.
ROOTFS=3
REQUEST="$KERNEL_META: $MODULES rootfs=$ROOTFS"

# A manifest is written last, so its presence means the other two files are whole.
is_complete() {
  [[ -s $OUT/vmlinuz && -s $OUT/initrd.cpio.gz && -s $OUT/manifest.json ]] &&
    grep -qF "\"request\": \"$REQUEST\"" "$OUT/manifest.json"
}
if [[ $FORCE == 0 ]] && is_complete; then
  echo "cached: $OUT"
  exit 0
fi

START=$(date +%s.%N)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/virtq-test-guest.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$WORK/debs" "$WORK/pkg" "$WORK/root"

# Runs an apt command; while another apt holds the lock it retries every 5 s for up to 5 min.
apt_retry() {
  local log=$WORK/apt.log deadline=$((SECONDS + 300))
  while :; do
    if "$@" >"$log" 2>&1; then return 0; fi
    if grep -qE 'Could not get lock|Unable to lock|Unable to acquire' "$log" && ((SECONDS < deadline)); then
      say "apt is locked; retrying in 5 s"
      sleep 5
      continue
    fi
    cat "$log" >&2
    return 1
  done
}

# The meta package's Depends names the versioned image package (linux-image-<abi>-cloud-amd64).
resolve_kernel() {
  local pkg
  pkg=$(apt-cache depends "$KERNEL_META" 2>/dev/null | awk '$1 == "Depends:" && $2 ~ /^linux-image-/ { print $2; exit }')
  if [[ -z $pkg ]]; then
    pkg=$(apt-cache show --no-all-versions "$KERNEL_META" 2>/dev/null |
      sed -n 's/^Depends: *//p' | tr ',' '\n' | awk '$1 ~ /^linux-image-/ { print $1; exit }')
  fi
  [[ -n $pkg ]] && echo "$pkg"
}

fetch_debs() {
  local kpkg
  kpkg=$(resolve_kernel) || return 1
  (cd "$WORK/debs" && apt_retry apt-get download -o APT::Sandbox::User=root "$kpkg" busybox-static)
}

if ! fetch_debs; then
  say "cannot resolve or download the packages; running apt-get update once"
  apt_retry apt-get update -o APT::Sandbox::User=root || die "apt-get update failed"
  fetch_debs || die "cannot download $KERNEL_META and busybox-static"
fi

for deb in "$WORK"/debs/*.deb; do dpkg-deb -x "$deb" "$WORK/pkg"; done
KDEB=$(ls "$WORK"/debs/linux-image-*.deb)
BBDEB=$(ls "$WORK"/debs/busybox-static_*.deb)
BB=$WORK/pkg/bin/busybox
KVER=$(ls "$WORK/pkg/lib/modules")
[[ -n $KVER && -x $BB && -f $WORK/pkg/boot/vmlinuz-$KVER ]] || die "unexpected package layout"

# The .deb ships no modules.dep (depmod runs in postinst), so busybox depmod makes one to resolve the closure.
"$BB" depmod -b "$WORK/pkg" "$KVER"
MODDIR=lib/modules/$KVER
# Prints "P <path>" for each .ko in the closure, "L <name>" for each requested module and "B <name>" for a
# requested name that is not in modules.dep (built in, or a typo: checked against modules.builtin below).
CLOSURE=$(awk -v want="$MODULES" '
  {
    key = $1; sub(/:$/, "", key)
    name = key; sub(/.*\//, "", name); sub(/\.ko.*$/, "", name); gsub(/-/, "_", name)
    path[name] = key; deps[key] = ""
    for (i = 2; i <= NF; i++) deps[key] = deps[key] " " $i
  }
  function add(p,   n, d, i) {
    if (p in seen) return
    seen[p] = 1; print "P " p
    n = split(deps[p], d, " ")
    for (i = 1; i <= n; i++) add(d[i])
  }
  END {
    n = split(want, w, " ")
    for (i = 1; i <= n; i++) {
      m = w[i]; gsub(/-/, "_", m)
      if (m in path) { add(path[m]); print "L " m } else print "B " m
    }
  }' "$WORK/pkg/$MODDIR/modules.dep")

ROOT=$WORK/root
LOAD=""
while read -r kind arg; do
  case $kind in
    P) mkdir -p "$ROOT/$MODDIR/$(dirname "$arg")"; cp "$WORK/pkg/$MODDIR/$arg" "$ROOT/$MODDIR/$arg" ;;
    L) LOAD="${LOAD:+$LOAD }$arg" ;;
    B) grep -qE "/${arg//_/[-_]}\.ko\$" "$WORK/pkg/$MODDIR/modules.builtin" || die "no module named $arg in $KVER"
       say "$arg is built into $KVER; skipping" ;;
  esac
done <<<"$CLOSURE"
cp "$WORK/pkg/$MODDIR/modules.builtin" "$ROOT/$MODDIR/"
"$BB" depmod -b "$ROOT" "$KVER"

# Rootfs: busybox with one symlink per applet, everything on PATH=/bin.
mkdir -p "$ROOT"/{bin,dev,proc,sys,run,tmp,root,etc/acpi/PWRF,etc/udhcpc,var/log}
ln -s bin "$ROOT/sbin"
mkdir -p "$ROOT/usr"
ln -s ../bin "$ROOT/usr/bin"
ln -s ../bin "$ROOT/usr/sbin"
ln -s ../run "$ROOT/var/run"
cp "$BB" "$ROOT/bin/busybox"
for applet in $("$BB" --list); do
  [[ $applet == busybox ]] || ln -s busybox "$ROOT/bin/$applet"
done
echo "$LOAD" >"$ROOT/etc/tg-modules"
# The kernel opens /dev/console for /init before devtmpfs exists; without the node PID 1 has no stdio.
mknod -m 600 "$ROOT/dev/console" c 5 1 2>/dev/null || say "cannot mknod /dev/console (not root); relying on the kernel's"

cat >"$ROOT/init" <<'EOF'
#!/bin/sh
# PID 1 of the virtq test guest: loads modules, reports disks, arms the ACPI power button, then prints
# GUEST-READY on ttyS0. It only ever leaves through a trapped signal that prints a marker and powers off or reboots.
export PATH=/bin HOME=/root TERM=dumb PS1='tg# '

# busybox poweroff/halt/reboot without -f signal PID 1 (USR2/USR1/TERM); INT is Ctrl-Alt-Del. The reason a
# helper left in /run/tg/why wins over the signal's own name. Repeats (e.g. a resent powerdown) are ignored.
STOPPING=
stop_guest() {
	[ -z "$STOPPING" ] || return 0
	STOPPING=1
	why=$(cat /run/tg/why 2>/dev/null)
	[ -n "$why" ] || why=$2
	sync
	if [ "$1" = poweroff ]; then
		echo "GUEST-POWEROFF $why"
		poweroff -f
	else
		echo "GUEST-REBOOT $why"
		reboot -f
	fi
	echo "TG-WARN: $1 -f returned"
}
trap 'stop_guest poweroff halt' USR1
trap 'stop_guest poweroff poweroff' USR2
trap 'stop_guest reboot reboot' TERM
trap 'stop_guest reboot ctrl-alt-del' INT

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs -o mode=0755 tmpfs /run
mkdir -p /run/tg/blk
exec 0<>/dev/console 1>&0 2>&0
# Without this the kernel restarts at once on Ctrl-Alt-Del, with no sync and no marker.
echo 0 >/proc/sys/kernel/ctrl-alt-del
hostname tg

TG_SHELL=1 TG_NOACPI=0 TG_AUTOREBOOT= TG_AUTOPOWEROFF= TG_NET=0 TG_PING= TG_DIRTY=
set -f
for w in $(cat /proc/cmdline); do
	case $w in
	tg_shell=*) TG_SHELL=${w#*=} ;;
	tg_noacpi=*) TG_NOACPI=${w#*=} ;;
	tg_autoreboot=*) TG_AUTOREBOOT=${w#*=} ;;
	tg_autopoweroff=*) TG_AUTOPOWEROFF=${w#*=} ;;
	tg_net=*) TG_NET=${w#*=} ;;
	tg_ping=*) TG_PING=${w#*=} ;;
	tg_dirty=*) TG_DIRTY=${w#*=} ;;
	esac
done
set +f

# Polls a condition every 20 ms for up to $1 tries (guest-side only; the host waits on markers).
retry() {
	n=$1
	shift
	while ! "$@"; do
		n=$((n - 1))
		[ "$n" -gt 0 ] || return 1
		sleep 0.02
	done
}

for m in $(cat /etc/tg-modules); do
	modprobe "$m" || echo "TG-WARN: modprobe $m failed"
done

# tg_net=1: DHCP on eth0 in the background (boot goes on). udhcpc stays to renew the lease; its
# script prints TG-NET-UP eth0 <ip> when bound (and runs tg-ping <tg_ping> once, if given).
net_up() {
	if ! retry 250 test -e /sys/class/net/eth0; then
		echo "TG-NET-FAIL no eth0 (is there a virtio-net device?)"
		return
	fi
	ip link set lo up
	ip link set eth0 up
	[ -z "$TG_PING" ] || echo "$TG_PING" >/run/tg/ping
	udhcpc -i eth0 -f -n -t 10 -T 1 -x hostname:"$(hostname)" -s /etc/udhcpc/default.script >/run/tg/udhcpc.log 2>&1 ||
		echo "TG-NET-FAIL eth0: no DHCP lease after 10 tries ($(tail -n 1 /run/tg/udhcpc.log))"
}
[ "$TG_NET" != 1 ] || net_up &

# Hotplugged disks are reported by a netlink listener; it must be bound before READY or an early
# device_add would go unreported. Port id = pid for a process's first netlink socket; 15 = KOBJECT_UEVENT.
uevent /bin/tg-uevent &
UEVENT_PID=$!
uevent_bound() { awk -v p="$UEVENT_PID" '$2 == 15 && $3 == p { f = 1 } END { exit !f }' /proc/net/netlink; }
retry 250 uevent_bound || echo "TG-WARN: uevent listener not bound"
for d in /sys/block/*; do
	[ -e "$d" ] && tg-block add "${d##*/}"
done

power_buttons() {
	for e in /sys/class/input/event*; do
		[ "$(cat "$e/device/name" 2>/dev/null)" = "Power Button" ] && echo "${e##*/}"
	done
}
# acpid opens /dev/input/event* once, at start: a press before it holds the button's node is lost.
acpid_holds_buttons() {
	for b in $BUTTONS; do
		held=
		for fd in /proc/$ACPID/fd/*; do
			[ "$(readlink "$fd")" = "/dev/input/$b" ] && held=1
		done
		[ -n "$held" ] || return 1
	done
}
if [ "$TG_NOACPI" = 1 ]; then
	echo "TG-NOTE: tg_noacpi=1, the ACPI power button is ignored"
else
	BUTTONS=
	buttons_present() { BUTTONS=$(power_buttons); [ -n "$BUTTONS" ]; }
	if retry 250 buttons_present; then
		acpid -f -c /etc/acpi -l /run/tg/acpid.log &
		ACPID=$!
		retry 250 acpid_holds_buttons || echo "TG-WARN: acpid does not hold the power button"
	else
		echo "TG-WARN: no ACPI Power Button input device"
	fi
fi

echo "TG-INFO: kernel=$(uname -r) uptime=$(cut -d' ' -f1 /proc/uptime)"
echo "GUEST-READY"

[ -z "$TG_DIRTY" ] || tg-dirty "$TG_DIRTY" &
if [ -n "$TG_AUTOREBOOT" ]; then
	(sleep "$TG_AUTOREBOOT"; echo autoreboot >/run/tg/why; kill -TERM 1) &
fi
if [ -n "$TG_AUTOPOWEROFF" ]; then
	(sleep "$TG_AUTOPOWEROFF"; echo autopoweroff >/run/tg/why; kill -USR2 1) &
fi

# The console shell waits for a line from the host so its prompt never lands before READY.
console_shell() {
	while :; do
		read -r _ </dev/console || { sleep 1; continue; }
		setsid cttyhack sh -i
	done
}
[ "$TG_SHELL" = 0 ] || console_shell &

# A trapped signal interrupts `wait` but not a foreground command, and PID 1 must never exit.
while :; do
	sleep 86400 &
	wait $!
done
EOF

cat >"$ROOT/bin/tg-uevent" <<'EOF'
#!/bin/sh
# Run by busybox uevent for every kernel uevent (the environment is the event); forwards whole-disk add/remove.
[ "$SUBSYSTEM" = block ] && [ "$DEVTYPE" = disk ] || exit 0
exec tg-block "$ACTION" "${DEVNAME##*/}"
EOF

cat >"$ROOT/bin/tg-block" <<'EOF'
#!/bin/sh
# Prints TG-BLOCK-ADD/TG-BLOCK-REMOVE at most once per state change: /run/tg/blk/<disk> records that the
# host has been told, so a disk found both by the boot scan and by a uevent is announced once.
name=$2
case $name in '' | loop* | ram* | zram*) exit 0 ;; esac
case $1 in
add)
	[ -e "/sys/block/$name" ] || exit 0
	mkdir "/run/tg/blk/$name" 2>/dev/null || exit 0
	echo "TG-BLOCK-ADD $name sectors=$(cat "/sys/block/$name/size")"
	;;
remove)
	rmdir "/run/tg/blk/$name" 2>/dev/null && echo "TG-BLOCK-REMOVE $name"
	;;
esac
exit 0
EOF

cat >"$ROOT/etc/udhcpc/default.script" <<'EOF'
#!/bin/sh
# busybox udhcpc's hook (at its default path): applies the lease from the environment ($ip, $mask in
# bits, $router, $dns, $domain). The first bind prints TG-NET-UP and runs the ping tg_ping= asked for.
case $1 in
deconfig)
	ip -4 addr flush dev "$interface"
	ip link set "$interface" up
	;;
bound | renew)
	[ "$1" = renew ] || ip -4 addr flush dev "$interface"
	ip addr add "$ip/${mask:-24}" dev "$interface" 2>/dev/null
	[ -z "$router" ] || ip route replace default via "${router%% *}" dev "$interface"
	: >/etc/resolv.conf
	for s in $dns; do echo "nameserver $s" >>/etc/resolv.conf; done
	[ -z "$domain" ] || echo "search $domain" >>/etc/resolv.conf
	if [ "$1" = bound ] && mkdir "/run/tg/net-$interface" 2>/dev/null; then
		echo "TG-NET-UP $interface $ip" >/dev/console
		[ ! -s /run/tg/ping ] || tg-ping "$(cat /run/tg/ping)" >/dev/console 2>&1 &
	fi
	;;
esac
exit 0
EOF

cat >"$ROOT/bin/tg-ping" <<'EOF'
#!/bin/sh
# tg-ping ADDR [COUNT]: pings ADDR (3 times by default) and prints TG-PING-OK ADDR <received>/<sent>
# when any reply came, else TG-PING-FAIL ADDR <received>/<sent>.
addr=$1
n=${2:-3}
[ -n "$addr" ] || { echo "usage: tg-ping ADDR [COUNT]"; exit 2; }
out=$(ping -c "$n" -W 2 "$addr" 2>&1)
got=$(echo "$out" | sed -n 's/.* \([0-9][0-9]*\) packets received.*/\1/p')
if [ "${got:-0}" -gt 0 ]; then
	echo "TG-PING-OK $addr ${got}/$n"
else
	echo "TG-PING-FAIL $addr ${got:-0}/$n"
fi
EOF

cat >"$ROOT/bin/tg-dirty" <<'EOF'
#!/bin/sh
# tg-dirty MIB: rewrites MIB MiB of guest memory (a file on the /run tmpfs) over and over until
# killed, so a live migration has pages dirtied while it copies them. The bytes are not zero:
# QEMU would send zero pages as a flag. Prints TG-DIRTY-RUNNING MIB after the first pass.
# From the console: `tg-dirty 32 &`; at boot: tg_dirty=32 on the kernel command line.
n=$1
case $n in '' | *[!0-9]*) echo "usage: tg-dirty MIB"; exit 2 ;; esac
f=/run/tg/dirty
pass=0
while :; do
	# 1<> opens the file for writing without truncating it: the same pages are written every pass.
	# A different byte each pass, so a page's content changes too (QEMU's page-sampling dirty rate hashes pages).
	c=$(echo abcdefghij | cut -c$((pass % 10 + 1)))
	tr '\000' "$c" </dev/zero | head -c $((n * 1048576)) 1<>"$f" || { echo "TG-DIRTY-FAIL $n"; exit 1; }
	pass=$((pass + 1))
	[ "$pass" != 1 ] || echo "TG-DIRTY-RUNNING $n"
done
EOF

cat >"$ROOT/etc/acpi/PWRF/00000080" <<'EOF'
#!/bin/sh
# busybox acpid runs this on an ACPI power button press; PID 1's USR2 trap prints GUEST-POWEROFF.
echo acpi-power-button >/run/tg/why
kill -USR2 1
EOF
chmod 755 "$ROOT/init" "$ROOT/bin/tg-uevent" "$ROOT/bin/tg-block" "$ROOT/bin/tg-ping" "$ROOT/bin/tg-dirty" "$ROOT/etc/udhcpc/default.script" \
  "$ROOT/etc/acpi/PWRF/00000080"

# Sorted entries and zero mtimes keep the file contents identical across builds (inode numbers still differ).
find "$ROOT" -exec touch -h -d @0 {} +
(cd "$ROOT" && find . -mindepth 1 | LC_ALL=C sort | "$BB" cpio -o -H newc -R 0:0 2>/dev/null) |
  gzip -9 -n >"$WORK/initrd.cpio.gz"

json_str() { printf '"%s"' "$1"; }
BUILD_SECONDS=$(awk -v s="$START" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f", e - s }')
mkdir -p "$OUT"
rm -f "$OUT/manifest.json"
cp "$WORK/pkg/boot/vmlinuz-$KVER" "$OUT/.vmlinuz.tmp" && mv -f "$OUT/.vmlinuz.tmp" "$OUT/vmlinuz"
cp "$WORK/initrd.cpio.gz" "$OUT/.initrd.tmp" && mv -f "$OUT/.initrd.tmp" "$OUT/initrd.cpio.gz"
cat >"$OUT/.manifest.tmp" <<EOF
{
  "request": $(json_str "$REQUEST"),
  "kernelVersion": $(json_str "$KVER"),
  "kernelPackage": $(json_str "$(dpkg-deb -f "$KDEB" Package)=$(dpkg-deb -f "$KDEB" Version)"),
  "busyboxPackage": $(json_str "busybox-static=$(dpkg-deb -f "$BBDEB" Version)"),
  "modules": $(json_str "$LOAD"),
  "vmlinuzBytes": $(stat -c %s "$OUT/vmlinuz"),
  "initrdBytes": $(stat -c %s "$OUT/initrd.cpio.gz"),
  "builtAt": $(json_str "$(date -u +%Y-%m-%dT%H:%M:%SZ)"),
  "buildSeconds": $BUILD_SECONDS
}
EOF
mv -f "$OUT/.manifest.tmp" "$OUT/manifest.json"
echo "built: $OUT (kernel $KVER, initrd $(stat -c %s "$OUT/initrd.cpio.gz") B, ${BUILD_SECONDS}s)"
