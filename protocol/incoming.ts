// Where a VM that does not boot gets its state from: a save image (restore, managed save) or the
// stream of a live migration. Either way its QEMU starts with `-incoming defer` and the shim feeds
// it (shim/vm/incoming.ts). A shim is told so by its command line (--restore, --incoming, for a
// shim run by hand) or by a start request on stdin (--start-request: virtqemud and embed mode,
// whose warm shims are started before the start they will serve is known; decision 0026).
import { Type, type Static } from '@sinclair/typebox';
import { VirtqError } from './errors.js';
import { lazyValidator } from './schema.js';

/** A VM's state comes from a checked save image, or from a live migration's source. */
export const IncomingState = Type.Union([
  Type.Object({ kind: Type.Literal('image'), file: Type.String({ minLength: 2, maxLength: 4096, pattern: '^/' }) }, { additionalProperties: false }),
  Type.Object({ kind: Type.Literal('migration'), transport: Type.Union([Type.Literal('unix'), Type.Literal('tcp')]) }, { additionalProperties: false }),
]);
export type IncomingState = Static<typeof IncomingState>;

/**
 * The whole start a shim is handed on stdin with --start-request: the definition (validated by
 * the shim as any definition is), whether the vCPUs stay paused, and where the VM's state comes
 * from. The same start on a command line is `--definition - [--paused] [--restore F | --incoming T]`.
 */
export const StartRequest = Type.Object({
  definition: Type.Unknown(),
  paused: Type.Boolean(),
  incoming: Type.Optional(IncomingState),
}, { additionalProperties: false });
export type StartRequest = Static<typeof StartRequest>;

// Its id names the check generated for the shim's bundle (scripts/shim-checks.mjs).
const startRequestValidator = lazyValidator(StartRequest, 'start-request');

/** The text a starter writes to the stdin of a shim run with --start-request. */
export function startRequestText(definition: unknown, paused: boolean, incoming: IncomingState | undefined): string {
  const req: StartRequest = { definition, paused, ...(incoming === undefined ? {} : { incoming }) };
  return JSON.stringify(req);
}

/** Reads a start request from a shim's stdin; INVALID_ARG naming the field when it is not one. */
export function parseStartRequest(text: string): StartRequest {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new VirtqError('INVALID_ARG', `the start request on stdin is not valid JSON: ${(err as Error).message}`);
  }
  return startRequestValidator.parse(value, 'start request');
}
