# Sourced by the benchmark scripts that run libvirt beside virtq (bash). It makes Debian 12's
# monolithic libvirtd run on this machine for one run and puts the host back afterwards, as
# ../../shared/design/HOST-FACTS.md describes:
#
#   lv_install PKG...   apt-get install the packages (apt-get update once if apt knows no candidate)
#   lv_prepare          a temp dir LVDIR with libvirtd.conf (sockets under LVDIR/sock, auth none,
#                       log file) and virtlogd.conf; the user libvirt-qemu when missing (libvirtd
#                       looks it up before reading its config); /etc/libvirt/qemu.conf backed up
#                       and replaced by the HOST-FACTS settings (libvirtd reads it only there)
#   lv_stop             stops libvirtd and virtlogd started with LVDIR's pid files (TERM, then
#                       KILL)
#   lv_restore          lv_stop, then restores qemu.conf, removes the user it created and the
#                       state dirs libvirtd created on its first start, removes LVDIR
#
# After lv_prepare: LVDIR, LV_URI (qemu+unix:///system?socket=LVDIR/sock/libvirt-sock),
# LIBVIRTD_CMD and VIRTLOGD_CMD (arrays: --daemon with LVDIR's config and pid file).

LV_STATE_DIRS=(/etc/libvirt/qemu /etc/libvirt/nwfilter /etc/libvirt/secrets /etc/libvirt/storage /run/libvirt /var/lib/libvirt /var/cache/libvirt /var/log/libvirt)
lv_created_dirs=()
lv_created_user=0
lv_qemu_conf=/etc/libvirt/qemu.conf
lv_qemu_conf_backup=""
LVDIR=""

lv_install() {
  if ! apt-cache policy "$1" | grep -q 'Candidate: [0-9]'; then
    apt-get update
  fi
  apt-cache policy "$@" | grep -E '^[a-z]|Candidate'
  DEBIAN_FRONTEND=noninteractive apt-get install -y "$@"
}

lv_prepare() {
  local d
  for d in "${LV_STATE_DIRS[@]}"; do [ -e "$d" ] || lv_created_dirs+=("$d"); done
  LVDIR="$(mktemp -d /tmp/vqlv-XXXXXX)"
  if ! getent passwd libvirt-qemu >/dev/null; then
    useradd --system --no-create-home --home-dir /var/lib/libvirt --shell /usr/sbin/nologin libvirt-qemu
    lv_created_user=1
  fi
  mkdir -p /etc/libvirt "$LVDIR/sock"
  if [ -e "$lv_qemu_conf" ]; then
    lv_qemu_conf_backup="$LVDIR/qemu.conf.orig"
    cp -p "$lv_qemu_conf" "$lv_qemu_conf_backup"
  else
    lv_qemu_conf_backup=none
  fi
  cat >"$lv_qemu_conf" <<'EOF'
# Written by one of virtq's benchmarks (bench/lib/libvirtd.sh) for one run; the original is put
# back when the run ends. Settings from ../shared/design/HOST-FACTS.md.
cgroup_controllers = [ ]
security_driver = "none"
dynamic_ownership = 0
user = "root"
group = "root"
namespaces = [ ]
EOF
  cat >"$LVDIR/libvirtd.conf" <<EOF
unix_sock_dir = "$LVDIR/sock"
auth_unix_ro = "none"
auth_unix_rw = "none"
log_outputs = "3:file:$LVDIR/libvirtd.log"
EOF
  cat >"$LVDIR/virtlogd.conf" <<EOF
log_outputs = "3:file:$LVDIR/virtlogd.log"
EOF
  LV_URI="qemu+unix:///system?socket=$LVDIR/sock/libvirt-sock"
  LIBVIRTD_CMD=(/usr/sbin/libvirtd --daemon -f "$LVDIR/libvirtd.conf" -p "$LVDIR/libvirtd.pid")
  VIRTLOGD_CMD=(/usr/sbin/virtlogd --daemon -f "$LVDIR/virtlogd.conf" -p "$LVDIR/virtlogd.pid")
}

lv_stop() {
  local p pid
  [ -n "$LVDIR" ] || return 0
  for p in libvirtd virtlogd; do
    if [ -f "$LVDIR/$p.pid" ]; then
      pid="$(cat "$LVDIR/$p.pid")"
      if [ -n "$pid" ] && grep -qa "$LVDIR" "/proc/$pid/cmdline" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null
      fi
    fi
  done
  return 0
}

lv_restore() {
  local d
  [ -n "$LVDIR" ] || return 0
  lv_stop
  if [ -n "$lv_qemu_conf_backup" ]; then
    if [ "$lv_qemu_conf_backup" = none ]; then rm -f "$lv_qemu_conf"; else cp -p "$lv_qemu_conf_backup" "$lv_qemu_conf"; fi
  fi
  if [ "$lv_created_user" = 1 ]; then userdel libvirt-qemu 2>/dev/null; fi
  for d in "${lv_created_dirs[@]}"; do rm -rf "$d"; done
  rm -rf "$LVDIR"
  return 0
}
