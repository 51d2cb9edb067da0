#!/usr/bin/env bash
# The README's first command: set up virtq, install its package (virtq, virtqemud and the other
# daemons on PATH), bring up virtqemud under a local root, boot the tiny demo guest and show it in
# `virtq list`. Safe to run again: it reuses what is already installed and up.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# The package as `npm install -g` installs it (scripts/install.sh; units: docs/guide-install.md).
bash scripts/install.sh --no-units --no-build
BIN_DIR="$(npm prefix -g)/bin"
export PATH="$BIN_DIR:$PATH"

ROOT="${VIRTQ_DEMO_ROOT:-/var/tmp/virtq-demo}"
# Every virtq command below goes to the demo's daemons without -c.
export VIRTQ_DEFAULT_URI="qemu:///system?root=$ROOT"
GUEST="${VIRTQ_TEST_GUEST_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/virtq/test-guest}"
mkdir -p "$ROOT"

if ! virtq list >/dev/null 2>&1; then
  nohup virtqemud --root "$ROOT" >"$ROOT/virtqemud.out" 2>&1 </dev/null &
  for _ in $(seq 1 100); do virtq list >/dev/null 2>&1 && break; sleep 0.1; done
fi
# The storage and secret daemons of the same root, for pool-*, vol-* and secret-* (each starts in
# any order; a second start finds its socket served and exits).
for d in virtstoraged virtsecretd; do
  if ! pgrep -f "$d(\.js)? --root $ROOT" >/dev/null; then
    nohup "$d" --root "$ROOT" >"$ROOT/$d.out" 2>&1 </dev/null &
  fi
done

cat >"$ROOT/demo.json" <<JSON
{
  "name": "demo",
  "memoryMiB": 128,
  "vcpus": 1,
  "accel": "tcg",
  "kernel": { "path": "$GUEST/vmlinuz", "initrd": "$GUEST/initrd.cpio.gz", "cmdline": "console=ttyS0 quiet panic=-1" }
}
JSON
virtq dominfo demo >/dev/null 2>&1 || virtq define "$ROOT/demo.json" >/dev/null
[ "$(virtq domstate demo)" = running ] || virtq start demo >/dev/null
virtq list --all
echo
echo "virtq is installed in $BIN_DIR; virtqemud serves $ROOT (log: $ROOT/log/virtqemud.log). Try:"
# Said only when the user's own PATH lacks the package's bin dir.
[ "$(PATH="${PATH#"$BIN_DIR:"}" command -v virtq || true)" = "$BIN_DIR/virtq" ] || echo "  export PATH=\"$BIN_DIR:\$PATH\""
cat <<TXT
  export VIRTQ_DEFAULT_URI='$VIRTQ_DEFAULT_URI'   # the demo's host; without it virtq uses qemu:///system
  virtq console demo                       # Ctrl-] leaves
  virtq shutdown demo --timeout 30
  virtq pool-list                          # virtstoraged of the same root
  virtq vol-create-as default disk1.qcow2 1G --format qcow2
  kill \$(pgrep -f 'virtqemud(.js)? --root $ROOT')   # the VM keeps running
TXT
