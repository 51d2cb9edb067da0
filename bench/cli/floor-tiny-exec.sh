#!/bin/sh
# A floor of the CLI bench (bench/cli/run.mjs): floor-tiny.cjs exec'd by sh, as the virtq
# launcher now execs its fast path (sh is replaced, not waited on).
exec node "${0%/*}/floor-tiny.cjs" "$@"
