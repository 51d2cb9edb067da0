// What a warm shim (docs/decisions/0026-warm-shim-pool.md) does while it waits for its definition:
// the one-time work of every start that depends on no VM (compiling the definition's validator,
// building the logger's redaction), so the start after the hand-off does not pay for it.
// It touches no file, socket or lock: a warm shim still holds nothing until it has a definition.
import { definitionValidator } from '../protocol/index.js';
import { LogHub } from '../daemon/logging.js';

/** Runs the VM-independent first-use work of a start; synchronous, so it ends before stdin is read. */
export function warmUp(): void {
  definitionValidator.check({});
  // Level silent: this hub writes nothing anywhere; the VM's own hub is built once its name is known.
  new LogHub({ name: 'virtq-shim', bindings: {}, filters: 'silent' }).module('shim');
}
