// A daemon's calls come a few at a time with idle between them, and V8 optimises a function only
// once it has run through its interrupt budget (bytecode weight, 66 KiB by default) three times:
// a per-call path (decode, dispatch, the handler's steps, encode) then runs in the interpreter or
// baseline code for thousands of calls, and after each pause that slow code is also cold. Once a
// daemon serves, it lowers the budget so those paths are optimised after tens of calls. Set then
// rather than on the command line: the start's run-once code (catalogues, schema compilation)
// would otherwise be optimised for nothing, +20–30 ms of CPU to the ready line. virtstoraged,
// interleaved with itself unchanged, 600 rounds after 15 ms idle each: listJobs 0.60 → 0.50 ms,
// create raw 1.88 → 1.66, delete 1.99 → 1.78 at p50, the same CPU over 1000 rounds and the same
// RSS (docs/decisions/0036-daemon-tier-up-budget.md). The shim keeps V8's default: it is tuned for
// memory per VM, and runs few calls.
import { setFlagsFromString } from 'node:v8';

/** The interrupt budget a serving daemon runs with (V8's default: 67584). */
export const DAEMON_INTERRUPT_BUDGET = 8192;

/** The V8 flag that sets it. */
export const DAEMON_TIER_UP_FLAG = `--interrupt-budget=${DAEMON_INTERRUPT_BUDGET}`;

/**
 * Lowers V8's interrupt budget for the rest of the process's life. V8 reads the flag each time it
 * resets a function's budget, so it takes effect from each function's next tick. `setFlags` is
 * `v8.setFlagsFromString` (a parameter for tests).
 */
export function tierUpSooner(setFlags: (flags: string) => void = setFlagsFromString): void {
  setFlags(DAEMON_TIER_UP_FLAG);
}
