// What a warm shim (docs/decisions/0026-warm-shim-pool.md) does while it waits for its definition:
// the one-time work of every start that depends on no VM (compiling the definition's validator,
// building the logger's redaction), so the start after the hand-off does not pay for it.
// It touches no file, socket or lock of any VM: a warm shim still holds nothing until it has a
// definition. The one thing it makes is an anonymous lease lifeline (warmLifeline).
import { join } from 'node:path';
import { definitionValidator, type Layout } from '../protocol/index.js';
import { LineLogHub } from '../daemon/line-log.js';
import { lockSpareLifeline } from '../drivers/lock/spare-lifeline.js';
import type { SpareLifeline } from '../drivers/lock/types.js';

/** Runs the VM-independent first-use work of a start; synchronous, so it ends before stdin is read. */
export function warmUp(): void {
  definitionValidator.check({});
  // Level silent: this hub writes nothing anywhere; the VM's own hub is built once its name is known.
  new LineLogHub({ name: 'virtq-shim', bindings: {}, filters: 'silent' }).module('shim');
}

/**
 * Locks the lifeline the VM's QEMU will inherit, in the root's lifeline directory (the lockfile
 * plugin's `run/leases`), with util-linux flock(1) from PATH: the one flock(1) child a start
 * needs whatever its disks (drivers/lock/spare-lifeline.ts says why this leaks nothing and leases
 * nothing). Synchronous, before stdin is read. Undefined if it cannot: the start then locks one itself.
 */
export function warmLifeline(layout: Pick<Layout, 'runtime'>): SpareLifeline | undefined {
  return lockSpareLifeline('flock', join(layout.runtime, 'leases'));
}
