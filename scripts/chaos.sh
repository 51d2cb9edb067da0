#!/usr/bin/env bash
# The long chaos run (issues #8 and #13): builds, then runs new seeds of test/chaos for MINUTES
# (default 30) and prints a summary: iterations, operations (VMs, volumes, secrets), faults
# injected by kind, outcomes, invariant violations.
#   scripts/chaos.sh [MINUTES] [FIRST_SEED]
# Env: VIRTQ_CHAOS_STEPS (steps per seed, default 60), VIRTQ_CHAOS_NAMES (VM names, default 8),
# VIRTQ_CHAOS_TMPFS (root tmpfs size, default 64m: volumes live there too; "off" for a plain temp dir), VIRTQ_CHAOS_VERBOSE=1.
# A failing seed is printed with the command that runs it again; its logs and trace are kept
# under /tmp/vq-chaos-failed-SEED-*.
set -euo pipefail
cd "$(dirname "$0")/.."
minutes="${1:-30}"
npm run build >/dev/null
export VIRTQ_CHAOS_MINUTES="$minutes"
if [ -n "${2:-}" ]; then export VIRTQ_CHAOS_SEED="$2"; fi
exec npx vitest run test/chaos --reporter=default
