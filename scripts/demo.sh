#!/usr/bin/env bash
# The README's first command: set up virtq, bring up virtqemud under a local root, boot the tiny
# demo guest and show it in `virtq list`. Safe to run again: it reuses what is already up.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

ROOT="${VIRTQ_DEMO_ROOT:-/var/tmp/virtq-demo}"
URI="qemu:///system?root=$ROOT"
VIRTQ=(node dist/bin/virtq.js -c "$URI")
GUEST="${VIRTQ_TEST_GUEST_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/virtq/test-guest}"
mkdir -p "$ROOT"

if ! "${VIRTQ[@]}" list >/dev/null 2>&1; then
  nohup node dist/bin/virtqemud.js --root "$ROOT" >"$ROOT/virtqemud.out" 2>&1 &
  for _ in $(seq 1 100); do "${VIRTQ[@]}" list >/dev/null 2>&1 && break; sleep 0.1; done
fi
# The storage and secret daemons of the same root, for pool-*, vol-* and secret-* (each starts in
# any order; a second start finds its socket served and exits).
for d in virtstoraged virtsecretd; do
  if ! pgrep -f "$d.js --root $ROOT" >/dev/null; then
    nohup node "dist/bin/$d.js" --root "$ROOT" >"$ROOT/$d.out" 2>&1 </dev/null &
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
"${VIRTQ[@]}" dominfo demo >/dev/null 2>&1 || "${VIRTQ[@]}" define "$ROOT/demo.json" >/dev/null
[ "$("${VIRTQ[@]}" domstate demo)" = running ] || "${VIRTQ[@]}" start demo >/dev/null
"${VIRTQ[@]}" list --all
cat <<TXT

virtqemud serves $ROOT (log: $ROOT/log/virtqemud.log). Try:
  node dist/bin/virtq.js -c '$URI' console demo      # Ctrl-] leaves
  node dist/bin/virtq.js -c '$URI' shutdown demo --timeout 30
  node dist/bin/virtq.js -c '$URI' pool-list       # virtstoraged of the same root
  node dist/bin/virtq.js -c '$URI' vol-create-as default disk1.qcow2 1G --format qcow2
  kill \$(pgrep -f 'virtqemud.js --root $ROOT')     # the VM keeps running
TXT
