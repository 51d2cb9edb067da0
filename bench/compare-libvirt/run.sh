#!/usr/bin/env bash
# Side by side with libvirt (issue #8): the same idle guest, the same QEMU, libvirt's monolithic
# libvirtd (Debian 12 ships no virtqemud) against virtqemud + one virtq-shim per VM, in one run.
#
#   bench/compare-libvirt/run.sh [--install] [run.mjs options]
#
#   --install         apt-get install libvirt's QEMU daemon, its clients and python3-libvirt first
#                     (apt-get update once if apt knows no candidate)
#   --install-only    the same, then stop
#   anything else     passed to run.mjs (see its header: --rounds, --sizes, --json FILE, ...)
#
# What this script changes on the host, and how it puts it back (the trap below, however the run
# ends):
#   /etc/libvirt/qemu.conf   libvirtd reads it from there only (no --root for the system daemon):
#                            backed up, replaced by the settings of HOST-FACTS.md, restored
#   user libvirt-qemu        created when missing (libvirtd looks it up before reading its
#                            config), removed again when this script created it
#   libvirtd, virtlogd       run with their own config files (-f) and pid files under a temp dir;
#                            libvirtd's sockets under that dir too (unix_sock_dir), so a libvirtd
#                            of the host, if any, is never touched; both stopped at the end
#   /etc/libvirt/qemu/*.xml, /run/libvirt/qemu, /var/log/libvirt/qemu: the benchmark's domains
#                            (names vqcmp<runid>-*) are destroyed and undefined, their logs removed;
#                            the state, cache and log directories libvirtd creates on its first
#                            start are removed again when they did not exist before the run (the
#                            QEMU capability cache with them: each run probes QEMU once, in the
#                            warm-up rounds)
#
# Everything runs under a child subreaper (subreaper.py): libvirtd daemonises and so do the QEMUs
# it starts, and PID 1 on this machine reaps orphans only every ~1.7 s, which would add that much
# to libvirt's destroy (HOST-FACTS.md).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
PY=/usr/bin/python3
PKGS=(libvirt-daemon-driver-qemu libvirt-daemon libvirt-clients python3-libvirt)
# shellcheck source=../lib/libvirtd.sh
. "$HERE/../lib/libvirtd.sh"

install=0
install_only=0
args=()
for a in "$@"; do
  case "$a" in
    --install) install=1 ;;
    --install-only) install=1; install_only=1 ;;
    *) args+=("$a") ;;
  esac
done

if [ "$(id -u)" != 0 ]; then
  echo "run.sh: libvirt's system daemon needs root" >&2
  exit 2
fi

if [ "$install" = 1 ]; then
  lv_install "${PKGS[@]}"
  [ "$install_only" = 1 ] && exit 0
fi

for b in /usr/sbin/libvirtd /usr/sbin/virtlogd /usr/bin/virsh; do
  if [ ! -x "$b" ]; then
    echo "run.sh: $b is missing: run bench/compare-libvirt/run.sh --install" >&2
    exit 2
  fi
done
if ! "$PY" -c 'import libvirt' 2>/dev/null; then
  echo "run.sh: python3-libvirt is missing: run bench/compare-libvirt/run.sh --install" >&2
  exit 2
fi
for f in dist/bin/virtqemud.js dist/bin/virtq-shim.js dist/bin/virtq.js; do
  if [ ! -f "$REPO/$f" ]; then
    echo "run.sh: $REPO/$f is missing: npm run build" >&2
    exit 2
  fi
done

# ---- a temporary libvirt configuration (bench/lib/libvirtd.sh) ------------------------------------
RUNID="$(date +%H%M%S)$$"
PREFIX="vqcmp${RUNID}-"

cleanup() {
  local rc=$?
  set +e
  # Domains of this run that are still there (an interrupted run): destroy and undefine them.
  if [ -n "$LVDIR" ] && [ -S "$LVDIR/sock/libvirt-sock" ]; then
    for d in $(virsh -q -c "$LV_URI" list --all --name 2>/dev/null | grep "^$PREFIX"); do
      virsh -q -c "$LV_URI" destroy "$d" >/dev/null 2>&1
      virsh -q -c "$LV_URI" undefine "$d" >/dev/null 2>&1
    done
  fi
  lv_stop
  # QEMUs of this run's domains (their command lines carry the run's prefix), by pid.
  for pid in $(grep -las "guest=$PREFIX" /proc/[0-9]*/cmdline 2>/dev/null | cut -d/ -f3); do
    kill -KILL "$pid" 2>/dev/null
  done
  rm -f /etc/libvirt/qemu/"$PREFIX"*.xml /etc/libvirt/qemu/autostart/"$PREFIX"*.xml
  rm -rf /var/log/libvirt/qemu/"$PREFIX"*.log* /run/libvirt/qemu/"$PREFIX"* /var/lib/libvirt/qemu/domain-*-"$PREFIX"*
  lv_restore
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP
lv_prepare

export VQCMP_LVDIR="$LVDIR" VQCMP_PREFIX="$PREFIX" VQCMP_PY="$PY"
export VQCMP_URI="$LV_URI"
set +e
"$PY" "$HERE/subreaper.py" node "$HERE/run.mjs" "${args[@]}"
rc=$?
set -e
exit "$rc"
