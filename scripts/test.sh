#!/usr/bin/env bash
# The whole test suite: set up (QEMU, npm ci, build, test guest), then every vitest suite —
# unit, integration with real QEMU booting the test guest, and end-to-end through the CLI.
# Fails when a test left a process running (scripts/left-behind.mjs). Ends with one
# "N passed, N failed, N skipped" line.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
mkdir -p .cache
status=0
# Inherited by everything the suite starts: how left-behind.mjs tells the suite's processes.
export VIRTQ_TEST_RUN="$$-$(date +%s%N)"
npx vitest run --reporter=default --reporter=json --outputFile=.cache/vitest.json "$@" || status=$?
node scripts/left-behind.mjs "$VIRTQ_TEST_RUN" || status=1
node -e '
  const r = JSON.parse(require("fs").readFileSync(".cache/vitest.json", "utf8"));
  const skipped = r.numPendingTests + r.numTodoTests;
  console.log(`${r.numPassedTests} passed, ${r.numFailedTests} failed, ${skipped} skipped`);
' || true
exit "$status"
