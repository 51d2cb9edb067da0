#!/usr/bin/env bash
# Remote access side by side with libvirt (issue #19): libvirt's qemu+tls:// and qemu+ssh:// (and
# its unix socket as the reference) against virtq's qemu+tls:// and qemu+ssh:// (bench/remote,
# bench/remote-ssh), in one run, interleaved round by round: each round runs libvirt's three
# transports (lv_remote.py), then virtq's TLS bench and virtq's ssh bench for one round each.
#
#   sudo bench/remote-libvirt/run.sh [--rounds 3] [--calls 2000] [--list-calls 100] [--vms 200] [--json FILE]
#                                    [--libvirt-only: libvirt's figures only, raw JSON per round]
#
# libvirt side: Debian 12's libvirtd run privately (bench/lib/libvirtd.sh) with --listen and
# listen_tls on a loopback port (certificates made here with openssl, RSA, one throwaway CA),
# 200 inactive domains plus one running idle guest (TCG, the guest virtq's benches use), whose
# dom.state() is the state round trip. ssh: a throwaway sshd (Debian's OpenSSH, loopback port,
# own host and user keys, as bench/remote-ssh) and libvirt's netcat proxy on the far side
# (proxy=netcat: `nc -U` to the private socket; virt-ssh-helper would connect to the system socket,
# which this private libvirtd does not use).
#
# Host changes and how they are undone (trap): everything bench/compare-libvirt/run.sh lists
# (lv_prepare/lv_restore), plus ~/.ssh/known_hosts, which libvirt's ssh transport (the system ssh
# with no_verify=1) appends the throwaway host key to: backed up and restored.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
PY=/usr/bin/python3
if [ -z "${VQRL_INNER:-}" ]; then
  # Under a child subreaper: libvirtd and the QEMU it starts double-fork (see compare-libvirt).
  exec "$PY" "$REPO/bench/compare-libvirt/subreaper.py" env VQRL_INNER=1 "$0" "$@"
fi
# shellcheck source=../lib/libvirtd.sh
. "$HERE/../lib/libvirtd.sh"

rounds=3 calls=2000 list_calls=100 vms=200 json="" libvirt_only=0
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) rounds="$2"; shift 2 ;;
    --calls) calls="$2"; shift 2 ;;
    --list-calls) list_calls="$2"; shift 2 ;;
    --vms) vms="$2"; shift 2 ;;
    --json) json="$2"; shift 2 ;;
    --libvirt-only) libvirt_only=1; shift ;;
    *) echo "run.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
if [ "$(id -u)" != 0 ]; then echo "run.sh: libvirt's system daemon needs root" >&2; exit 2; fi
for b in /usr/sbin/libvirtd /usr/sbin/virtlogd /usr/sbin/sshd /usr/bin/nc openssl; do
  command -v "$b" >/dev/null || { echo "run.sh: $b is missing" >&2; exit 2; }
done
IDLE="${VIRTQ_TEST_GUEST_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/virtq/test-guest}/idle.bin"
QEMU="$(command -v qemu-system-x86_64)"
[ -f "$IDLE" ] || { echo "run.sh: $IDLE is missing: node scripts/build-idle-guest.mjs" >&2; exit 2; }

RUNID="$(date +%H%M%S)$$"
PREFIX="vqrl${RUNID}-"
KH="$HOME/.ssh/known_hosts"
KH_BACKUP=""
SSHD_PID=""
OUT=""

cleanup() {
  local rc=$?
  set +e
  if [ -n "$LVDIR" ] && [ -S "$LVDIR/sock/libvirt-sock" ]; then
    for d in $(virsh -q -c "$LV_URI" list --all --name 2>/dev/null | grep "^$PREFIX"); do
      virsh -q -c "$LV_URI" destroy "$d" >/dev/null 2>&1
      virsh -q -c "$LV_URI" undefine "$d" >/dev/null 2>&1
    done
  fi
  lv_stop
  for pid in $(grep -las "guest=$PREFIX" /proc/[0-9]*/cmdline 2>/dev/null | cut -d/ -f3); do kill -KILL "$pid" 2>/dev/null; done
  [ -n "$SSHD_PID" ] && { kill -KILL "$SSHD_PID"; wait "$SSHD_PID"; } 2>/dev/null
  if [ "$KH_BACKUP" = none ]; then rm -f "$KH"; [ "${SSH_DIR_CREATED:-0}" = 1 ] && rmdir "$HOME/.ssh"; elif [ -n "$KH_BACKUP" ]; then cp -p "$KH_BACKUP" "$KH"; fi
  rm -f /etc/libvirt/qemu/"$PREFIX"*.xml
  rm -rf /var/log/libvirt/qemu/"$PREFIX"*.log* /run/libvirt/qemu/"$PREFIX"* /var/lib/libvirt/qemu/domain-*-"$PREFIX"*
  [ -n "$OUT" ] && rm -rf "$OUT"
  lv_restore
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP
lv_prepare
OUT="$(mktemp -d /tmp/vqrl-out-XXXXXX)"
free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# ---- TLS: a CA, a server certificate for 127.0.0.1, a client certificate (pkipath layout) --------
PKI="$LVDIR/pki"; mkdir -p "$PKI/client"
(
  cd "$PKI"
  ssl() { openssl "$@" 2>/dev/null; }
  ssl req -x509 -newkey rsa:2048 -nodes -keyout cakey.pem -out cacert.pem -days 2 -subj /CN=bench-ca \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign
  printf 'subjectAltName=IP:127.0.0.1\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n' >server.ext
  printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n' >client.ext
  for who in server client; do
    ssl req -newkey rsa:2048 -nodes -keyout "${who}key.pem" -out "$who.csr" -subj "/O=bench/CN=$who"
    ssl x509 -req -in "$who.csr" -CA cacert.pem -CAkey cakey.pem -CAcreateserial -out "${who}cert.pem" -days 2 -extfile "$who.ext"
  done
  cp cacert.pem clientcert.pem clientkey.pem client/
)
TLS_PORT="$(free_port)"
cat >>"$LVDIR/libvirtd.conf" <<EOF2
listen_tls = 1
listen_tcp = 0
listen_addr = "127.0.0.1"
tls_port = "$TLS_PORT"
auth_tls = "none"
key_file = "$PKI/serverkey.pem"
cert_file = "$PKI/servercert.pem"
ca_file = "$PKI/cacert.pem"
EOF2

"${VIRTLOGD_CMD[@]}"
"${LIBVIRTD_CMD[@]}" --listen
for _ in $(seq 100); do [ -S "$LVDIR/sock/libvirt-sock" ] && break; sleep 0.1; done

# ---- sshd on a loopback port with throwaway keys (as bench/remote-ssh) ----------------------------
SSHDIR="$LVDIR/ssh"; mkdir -p "$SSHDIR" /run/sshd
ssh-keygen -q -t ed25519 -N '' -f "$SSHDIR/host_key"
ssh-keygen -q -t ed25519 -N '' -f "$SSHDIR/user_key"
cp "$SSHDIR/user_key.pub" "$SSHDIR/authorized_keys"; chmod 600 "$SSHDIR/authorized_keys"
SSH_PORT="$(free_port)"
cat >"$SSHDIR/sshd_config" <<EOF2
ListenAddress 127.0.0.1
HostKey $SSHDIR/host_key
AuthorizedKeysFile $SSHDIR/authorized_keys
PidFile $SSHDIR/sshd.pid
StrictModes no
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
PrintMotd no
MaxStartups 100
EOF2
/usr/sbin/sshd -D -e -f "$SSHDIR/sshd_config" -p "$SSH_PORT" 2>"$SSHDIR/sshd.log" &
SSHD_PID=$!
for _ in $(seq 100); do grep -q 'Server listening' "$SSHDIR/sshd.log" && break; sleep 0.1; done
[ -d "$HOME/.ssh" ] || { mkdir -m 700 "$HOME/.ssh"; SSH_DIR_CREATED=1; }
if [ -e "$KH" ]; then KH_BACKUP="$OUT/known_hosts.orig"; cp -p "$KH" "$KH_BACKUP"; else KH_BACKUP=none; fi

SOCK="$LVDIR/sock/libvirt-sock"
U_UNIX="$LV_URI"
U_TLS="qemu+tls://127.0.0.1:$TLS_PORT/system?pkipath=$PKI/client"
U_SSH="qemu+ssh://root@127.0.0.1:$SSH_PORT/system?socket=$SOCK&keyfile=$SSHDIR/user_key&no_verify=1&proxy=netcat"

"$PY" "$HERE/lv_remote.py" setup "$U_UNIX" "$PREFIX" "$vms" "$IDLE" "$QEMU"
for r in $(seq "$rounds"); do
  echo "round $r" >&2
  "$PY" "$HERE/lv_remote.py" bench 1 "$calls" "$list_calls" "${PREFIX}run" unix="$U_UNIX" tls="$U_TLS" ssh="$U_SSH" >"$OUT/lv-$r.json"
  if [ "$libvirt_only" = 1 ]; then cat "$OUT/lv-$r.json"; continue; fi
  node "$REPO/bench/remote/run.mjs" --vms "$vms" --state-calls "$calls" --list-calls "$list_calls" --rounds 1 --json "$OUT/vq-tls-$r.json" >/dev/null
  echo "virtq round $r tls done" >&2
  node "$REPO/bench/remote-ssh/run.mjs" --vms "$vms" --calls "$calls" --connects 5 --rounds 1 --json "$OUT/vq-ssh-$r.json" >/dev/null 2>&1
  echo "virtq round $r ssh done" >&2
done
[ "$libvirt_only" = 1 ] && exit 0
node "$HERE/report.mjs" "$OUT" "$rounds" "$vms" "$calls" "$list_calls" ${json:+"$json"}
