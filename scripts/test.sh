#!/usr/bin/env bash
# The whole test suite: set up (QEMU, npm ci, build, test guest), then every vitest suite —
# unit, integration with real QEMU booting the test guest, and end-to-end through the CLI.
# Ends with one "N passed, N failed, N skipped" line.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
mkdir -p .cache
status=0
npx vitest run --reporter=default --reporter=json --outputFile=.cache/vitest.json "$@" || status=$?
node -e '
  const r = JSON.parse(require("fs").readFileSync(".cache/vitest.json", "utf8"));
  const skipped = r.numPendingTests + r.numTodoTests;
  console.log(`${r.numPassedTests} passed, ${r.numFailedTests} failed, ${skipped} skipped`);
' || true
exit "$status"
