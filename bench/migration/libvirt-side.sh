#!/usr/bin/env bash
# libvirt's side of bench/migration: two private libvirtds (Debian 12's monolithic libvirtd 9.0)
# on this one machine, and `virsh migrate --live` of the test guest from one to the other.
# run.mjs calls it; run the whole bench under `flock /tmp/virtq-libvirt-bench.lock` (the global
# /etc/libvirt/qemu.conf is replaced for the run, bench/lib/libvirtd.sh).
#
#   libvirt-side.sh start              prints the state dir (S) on stdout
#   libvirt-side.sh round S NAME MEMORY_MIB KERNEL INITRD CMDLINE READY_MARKER MAX_DOWNTIME_MS
#                                      prints {"total":ms,"downtime":ms} (virsh's wall time; libvirt's
#                                      "Total downtime" from domjobinfo --completed on the destination)
#   libvirt-side.sh stop S             stops both daemons and puts the host back
#
# Two system-mode libvirtds collide in /run/libvirt, /var/lib/libvirt, /var/cache/libvirt and
# /var/log/libvirt (compiled-in paths): each runs in a mount namespace of its own (unshare -m)
# with private directories bind-mounted there. Each gets its own host_uuid (libvirt refuses to
# migrate to "the same host"), QEMU's output goes to files (stdio_handler, no virtlogd needed),
# and the stream goes over loopback TCP (--migrateuri tcp://127.0.0.1).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=../lib/libvirtd.sh
. "$HERE/../lib/libvirtd.sh"
DIRS=(/run/libvirt /var/lib/libvirt /var/cache/libvirt /var/log/libvirt)

daemon_start() { # S side
  local s=$1 side=$2 d
  mkdir -p "$s/$side/sock"
  for d in "${DIRS[@]}"; do mkdir -p "$s/$side$d"; done
  cat >"$s/$side/libvirtd.conf" <<EOF
unix_sock_dir = "$s/$side/sock"
auth_unix_ro = "none"
auth_unix_rw = "none"
host_uuid = "$(cat /proc/sys/kernel/random/uuid)"
log_outputs = "3:file:$s/$side/libvirtd.log"
EOF
  local binds=""
  for d in "${DIRS[@]}"; do binds+="mount --bind '$s/$side$d' '$d'; "; done
  unshare --mount --propagation private bash -c "$binds exec /usr/sbin/libvirtd --daemon -f '$s/$side/libvirtd.conf' -p '$s/$side/libvirtd.pid'"
  for _ in $(seq 300); do [ -S "$s/$side/sock/libvirt-sock" ] && virsh -q -c "$(uri "$s" "$side")" version >/dev/null 2>&1 && return 0; sleep 0.1; done
  echo "libvirtd $side did not come up: $(tail -n 5 "$s/$side/libvirtd.log" 2>/dev/null)" >&2
  return 1
}
uri() { echo "qemu+unix:///system?socket=$1/$2/sock/libvirt-sock"; }
now_ms() { date +%s%3N; }

case ${1:-} in
start)
  lv_prepare
  # The bind-mount points (lv_restore removes those lv_prepare saw missing).
  for d in "${DIRS[@]}"; do mkdir -p "$d"; done
  # lv_restore removes these again when they did not exist (lv_prepare recorded them).
  cat >>/etc/libvirt/qemu.conf <<'EOF'
stdio_handler = "file"
EOF
  declare -p LVDIR lv_created_dirs lv_created_user lv_qemu_conf_backup >"$LVDIR/lv-state.sh"
  daemon_start "$LVDIR" a >&2
  daemon_start "$LVDIR" b >&2
  echo "$LVDIR"
  ;;
round)
  s=$2 name=$3 mem=$4 kernel=$5 initrd=$6 cmdline=$7 ready=$8 maxdt=$9
  log="$s/$name.console.log"
  rm -f "$log"
  cat >"$s/$name.xml" <<EOF
<domain type='qemu'>
  <name>$name</name>
  <memory unit='MiB'>$mem</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type><kernel>$kernel</kernel><initrd>$initrd</initrd><cmdline>$cmdline</cmdline></os>
  <features><acpi/></features>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <serial type='file'><source path='$log' append='on'/></serial>
    <memballoon model='none'/>
  </devices>
</domain>
EOF
  A=$(uri "$s" a) B=$(uri "$s" b)
  virsh -q -c "$A" create "$s/$name.xml" >/dev/null
  for _ in $(seq 1200); do grep -q "$ready" "$log" 2>/dev/null && break; sleep 0.1; done
  grep -q "$ready" "$log" || { echo "no $ready from $name" >&2; virsh -q -c "$A" destroy "$name" >/dev/null 2>&1; exit 1; }
  virsh -q -c "$A" migrate-setmaxdowntime "$name" "$maxdt" >/dev/null 2>&1 || true
  t0=$(now_ms)
  virsh -q -c "$A" migrate --live "$name" "$B" --migrateuri tcp://127.0.0.1 >/dev/null
  t1=$(now_ms)
  dt=$(virsh -q -c "$B" domjobinfo --completed "$name" 2>/dev/null | awk -F: '/Total downtime/ { gsub(/[^0-9]/, "", $2); print $2 }')
  virsh -q -c "$B" destroy "$name" >/dev/null 2>&1 || true
  echo "{\"total\":$((t1 - t0)),\"downtime\":${dt:-null}}"
  ;;
stop)
  s=$2
  # shellcheck disable=SC1091
  . "$s/lv-state.sh"
  for side in a b; do
    if [ -f "$s/$side/libvirtd.pid" ]; then
      pid=$(cat "$s/$side/libvirtd.pid")
      if grep -qa "$s/$side" "/proc/$pid/cmdline" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
      fi
    fi
  done
  lv_restore
  ;;
*) echo "usage: libvirt-side.sh start | round S NAME MEMORY KERNEL INITRD CMDLINE READY MAX_DOWNTIME | stop S" >&2; exit 2 ;;
esac
