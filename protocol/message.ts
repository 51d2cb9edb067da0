// The message header carried in every frame (see the wire table in framing.ts), and the check
// that turns a decoded CBOR item into a typed message or a MALFORMED_MESSAGE error.
import { VirtqError, type WireError } from './errors.js';

export type MessageType = 'call' | 'reply' | 'event' | 'stream';
export type MessageStatus = 'ok' | 'error';

/** One protocol message. */
export interface Message {
  prog: string;
  proc: string;
  type: MessageType;
  serial: number;
  status: MessageStatus;
  body: unknown;
}

const TYPES: ReadonlySet<string> = new Set(['call', 'reply', 'event', 'stream']);
const MAX_SERIAL = 0xffff_ffff;

/** Checks a decoded item; throws MALFORMED_MESSAGE with what is wrong (and the serial when known). */
export function parseMessage(item: unknown): Message {
  if (typeof item !== 'object' || item === null || Array.isArray(item)) {
    throw new VirtqError('MALFORMED_MESSAGE', 'message is not a map');
  }
  const m = item as Record<string, unknown>;
  const serial = m['serial'];
  const knownSerial = typeof serial === 'number' && Number.isInteger(serial) && serial >= 0 && serial <= MAX_SERIAL;
  const fail = (why: string): never => {
    throw new VirtqError('MALFORMED_MESSAGE', `malformed message: ${why}`, knownSerial ? { details: { serial } } : {});
  };
  if (!knownSerial) fail('serial must be an unsigned 32-bit integer');
  if (typeof m['prog'] !== 'string') fail('prog must be text');
  if (typeof m['proc'] !== 'string') fail('proc must be text');
  if (typeof m['type'] !== 'string' || !TYPES.has(m['type'])) fail('type must be call, reply, event or stream');
  const status = m['status'] ?? 'ok';
  if (status !== 'ok' && status !== 'error') fail('status must be ok or error');
  return m as unknown as Message;
}

/** A reply carrying an error. */
export function errorReply(prog: string, proc: string, serial: number, error: WireError): Message {
  return { prog, proc, type: 'reply', serial, status: 'error', body: error };
}
