// The error a failed schema check becomes, shared by protocol/schema.ts and the shim's
// precompiled-schema.ts so both word it the same (the hostile-input tests compare the text).
import { VirtqError } from './errors.js';

/** The first error TypeBox reports for a value (its ValueError, as far as the message needs it). */
export interface FirstError {
  readonly path: string;
  readonly message: string;
}

/** INVALID_ARG naming the first offending field path of a value that failed its check. */
export function invalidValue(first: FirstError | undefined, what: string): VirtqError {
  const path = first === undefined || first.path === '' ? '/' : first.path;
  const message = first === undefined ? 'does not match its schema' : first.message;
  return new VirtqError('INVALID_ARG', `invalid ${what}: ${path}: ${message}`, { details: { path } });
}
