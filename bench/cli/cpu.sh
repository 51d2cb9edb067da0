#!/usr/bin/env bash
# CPU time (user + sys, from /usr/bin/time) of `virtq --version` as a whole process: the fast
# path (the launcher's default), the snapshot (VIRTQ_NO_FAST=1), the bundle (also
# VIRTQ_NO_SNAPSHOT=1), another build (BASE, optional) and `node -e 0`, interleaved. CPU time
# moves less than wall time on a loaded machine. With URI and NAME, `list --all` and `dominfo
# NAME` against that virtqemud are timed the same way.
#   bash bench/cli/cpu.sh [RUNS] [BASE_DIST] [URI NAME]
set -euo pipefail
runs=${1:-20}
base=${2:-}
uri=${3:-}
name=${4:-}
bin="$(cd "$(dirname "$0")/../.." && pwd)/dist/bin/virtq.js"
out=$(mktemp)
trap 'rm -f "$out"' EXIT
for _ in $(seq 1 "$runs"); do
  /usr/bin/time -a -o "$out" -f "floor %U %S" node -e 0
  /usr/bin/time -a -o "$out" -f "fast %U %S" "$bin" --version >/dev/null
  VIRTQ_NO_FAST=1 /usr/bin/time -a -o "$out" -f "snapshot %U %S" "$bin" --version >/dev/null
  VIRTQ_NO_FAST=1 VIRTQ_NO_SNAPSHOT=1 /usr/bin/time -a -o "$out" -f "bundle %U %S" "$bin" --version >/dev/null
  if [ -n "$uri" ]; then
    /usr/bin/time -a -o "$out" -f "list/fast %U %S" "$bin" -c "$uri" list --all >/dev/null
    VIRTQ_NO_FAST=1 /usr/bin/time -a -o "$out" -f "list/snapshot %U %S" "$bin" -c "$uri" list --all >/dev/null
    /usr/bin/time -a -o "$out" -f "dominfo/fast %U %S" "$bin" -c "$uri" dominfo "$name" >/dev/null
    VIRTQ_NO_FAST=1 /usr/bin/time -a -o "$out" -f "dominfo/snapshot %U %S" "$bin" -c "$uri" dominfo "$name" >/dev/null
  fi
  [ -z "$base" ] || /usr/bin/time -a -o "$out" -f "base %U %S" "$base/bin/virtq.js" --version >/dev/null
done
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
awk '{ v[$1] = v[$1] " " ($2 + $3) * 1000 } END { for (k in v) print k v[k] }' "$out" | while read -r name values; do
  sorted=$(tr ' ' '\n' <<<"$values" | sort -n)
  n=$(wc -l <<<"$sorted")
  p50=$(sed -n "$(( (n + 1) / 2 ))p" <<<"$sorted")
  p90=$(sed -n "$(( (n * 9 + 9) / 10 ))p" <<<"$sorted")
  echo "$name: CPU ms p50 $p50, p90 $p90 ($n runs)"
done
