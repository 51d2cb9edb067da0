#!/bin/sh
# A floor of the CLI bench (bench/cli/run.mjs): floor-tiny.cjs behind sh, waited for as the
# virtq launcher waits for its fast path (it must see the status).
node "${0%/*}/floor-tiny.cjs" "$@"; s=$?; exit $s
