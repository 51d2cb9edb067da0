#!/usr/bin/env bash
# virtstoraged against the tools it wraps (qemu-img, cp, rm, cat: the floor) and against libvirt's
# storage driver, 1 GiB volumes, in one run (issue #13). See run.mjs for what is measured.
#
#   bench/storage/run.sh [--install] [--no-libvirt] [run.mjs options]
#
#   --install        apt-get install libvirt's daemon, its clients and python3-libvirt first. On
#                    Debian 12 there is no libvirt-daemon-driver-storage package: the storage
#                    driver (libvirt_driver_storage.so) and its `dir` backend
#                    (libvirt_storage_backend_fs.so) ship in libvirt-daemon, the monolithic
#                    libvirtd, which depends on libvirt-daemon-driver-qemu
#   --install-only   the same, then stop
#   --no-libvirt     leave libvirt out (its columns print "not run")
#   anything else    passed to run.mjs (--rounds, --only, --gib, --json FILE, ...)
#
# Without libvirt installed (or not as root) the run goes on and libvirt's columns print
# "not installed". With it, libvirtd runs for the length of the run with its own config and
# sockets under a temp dir, and the host is put back afterwards (bench/lib/libvirtd.sh: the user
# libvirt-qemu, /etc/libvirt/qemu.conf and the state dirs libvirtd creates). Its storage pool is
# transient (pool-create, never defined), in the run's own directory, which is removed at the end.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
PY=/usr/bin/python3
PKGS=(libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients python3-libvirt)
LIBDIR=/usr/lib/x86_64-linux-gnu/libvirt
# shellcheck source=../lib/libvirtd.sh
. "$HERE/../lib/libvirtd.sh"

install=0
install_only=0
use_libvirt=1
args=()
for a in "$@"; do
  case "$a" in
    --install) install=1 ;;
    --install-only) install=1; install_only=1 ;;
    --no-libvirt) use_libvirt=0 ;;
    *) args+=("$a") ;;
  esac
done

if [ "$install" = 1 ]; then
  if [ "$(id -u)" != 0 ]; then echo "run.sh: --install needs root" >&2; exit 2; fi
  lv_install "${PKGS[@]}"
  [ "$install_only" = 1 ] && exit 0
fi

if [ ! -f "$REPO/dist/bin/virtstoraged.js" ]; then
  echo "run.sh: $REPO/dist/bin/virtstoraged.js is missing: npm run build" >&2
  exit 2
fi

missing=""
for f in /usr/sbin/libvirtd /usr/bin/virsh "$LIBDIR/connection-driver/libvirt_driver_storage.so" "$LIBDIR/storage-backend/libvirt_storage_backend_fs.so"; do
  [ -e "$f" ] || missing="$missing $f"
done
"$PY" -c 'import libvirt' 2>/dev/null || missing="$missing python3-libvirt"

if [ "$use_libvirt" = 0 ]; then
  export VQSB_LIBVIRT="not run"
elif [ -n "$missing" ]; then
  echo "run.sh: libvirt is not installed (missing:$missing); run with --install to compare with it" >&2
  export VQSB_LIBVIRT="not installed"
elif [ "$(id -u)" != 0 ]; then
  echo "run.sh: libvirt's system daemon needs root; running without it" >&2
  export VQSB_LIBVIRT="not run (needs root)"
else
  trap 'rc=$?; set +e; lv_restore; exit $rc' EXIT
  trap 'exit 130' INT TERM HUP
  lv_prepare
  export VQSB_LIBVIRT=yes VQSB_LVDIR="$LVDIR" VQSB_URI="$LV_URI" VQSB_PY="$PY"
  export VQSB_LIBVIRTD_CMD="${LIBVIRTD_CMD[*]}"
fi

# Under a child subreaper: libvirtd --daemon double-forks, and PID 1 here reaps orphans only
# every ~1.7 s (HOST-FACTS.md); run.mjs stops libvirtd and waits for it before it exits.
# run.mjs (the StorageClient side and the driver alone) runs with the glibc malloc settings of
# virtstoraged's shebang, so the driver alone is measured as the daemon runs it; the processes it
# starts do not inherit them (sides.mjs). `virtq vol-upload` rows show the CLI as shipped.
set +e
"$PY" "$HERE/../compare-libvirt/subreaper.py" env MALLOC_MMAP_THRESHOLD_=4194304 MALLOC_TRIM_THRESHOLD_=67108864 \
  node "$HERE/run.mjs" "${args[@]}"
rc=$?
set -e
exit "$rc"
