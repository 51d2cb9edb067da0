// Argument checks for the secret driver: UUIDs, usages, descriptions and values, each refused
// with INVALID_ARG naming the field. Messages may quote a bad UUID or usage (bounded), never a
// value: a value is only ever measured.
import { VirtqError } from '../../protocol/errors.js';
import {
  MAX_SECRET_DESCRIPTION_CHARS, MAX_SECRET_USAGE_CHARS, MAX_SECRET_VALUE_BYTES,
  type SecretDefinition, type SecretUsage,
} from './types.js';

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** A bad input quoted in a message: JSON, cut to 60 characters. */
function quote(input: unknown): string {
  const text = typeof input === 'string' ? JSON.stringify(input) : typeof input;
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

function invalid(field: string, message: string): VirtqError {
  return new VirtqError('INVALID_ARG', `${field}: ${message}`, { details: { field } });
}

/** The canonical (lowercase) form of a UUID given in any case; INVALID_ARG otherwise. */
export function parseUuid(input: unknown, field = 'uuid'): string {
  if (typeof input !== 'string' || !UUID_RE.test(input)) {
    throw invalid(field, `${quote(input)} is not a UUID (expected 8-4-4-4-12 hex digits, e.g. 3f2504e0-4f89-11d3-9a0c-0305e82c3301)`);
  }
  return input.toLowerCase();
}

/** A bounded text field: a string of at most `max` characters, no NUL, valid Unicode. */
function checkText(input: unknown, field: string, max: number, allowEmpty: boolean): string {
  if (typeof input !== 'string') throw invalid(field, `must be a string, not ${quote(input)}`);
  if (!allowEmpty && input.length === 0) throw invalid(field, 'must not be empty');
  if (input.length > max) throw invalid(field, `is ${input.length} characters; the limit is ${max}`);
  if (input.includes('\0')) throw invalid(field, 'must not contain a NUL character');
  if (Buffer.from(input, 'utf8').toString('utf8') !== input) throw invalid(field, 'is not valid Unicode (lone surrogate)');
  return input;
}

/** A usage, checked and copied (no extra fields survive); undefined means none. */
export function checkUsage(input: unknown): SecretUsage | undefined {
  if (input === undefined) return undefined;
  if (typeof input !== 'object' || input === null) throw invalid('usage', `must be an object, not ${quote(input)}`);
  const u = input as Record<string, unknown>;
  if (u['type'] === 'volume') return { type: 'volume', volume: checkText(u['volume'], 'usage.volume', MAX_SECRET_USAGE_CHARS, false) };
  if (u['type'] === 'text') return { type: 'text', text: checkText(u['text'], 'usage.text', MAX_SECRET_USAGE_CHARS, false) };
  throw invalid('usage.type', `must be "volume" or "text", not ${quote(u['type'])}`);
}

/** A description, checked; undefined means none. */
export function checkDescription(input: unknown): string | undefined {
  return input === undefined ? undefined : checkText(input, 'description', MAX_SECRET_DESCRIPTION_CHARS, true);
}

function checkFlag(input: unknown, field: string): boolean {
  if (input === undefined) return false;
  if (typeof input !== 'boolean') throw invalid(field, `must be true or false, not ${quote(input)}`);
  return input;
}

/** A definition with its defaults applied and every field checked. */
export interface CheckedDefinition {
  uuid: string | undefined;
  usage: SecretUsage | undefined;
  description: string | undefined;
  private: boolean;
  ephemeral: boolean;
}

/** Checks define()'s argument. */
export function checkDefinition(input: SecretDefinition): CheckedDefinition {
  if (typeof input !== 'object' || input === null) throw invalid('definition', 'must be an object');
  return {
    uuid: input.uuid === undefined ? undefined : parseUuid(input.uuid),
    usage: checkUsage(input.usage),
    description: checkDescription(input.description),
    private: checkFlag(input.private, 'private'),
    ephemeral: checkFlag(input.ephemeral, 'ephemeral'),
  };
}

/** Checks a value's type and size (1 byte to 64 KiB); the message gives sizes only. */
export function checkValue(input: unknown): Uint8Array {
  if (!(input instanceof Uint8Array)) throw invalid('value', `must be bytes (Uint8Array), not ${typeof input}`);
  if (input.byteLength === 0) throw invalid('value', 'is empty; a secret value is 1 to 65536 bytes');
  if (input.byteLength > MAX_SECRET_VALUE_BYTES) {
    throw new VirtqError('INVALID_ARG', `value: is ${input.byteLength} bytes; the limit is ${MAX_SECRET_VALUE_BYTES} bytes (64 KiB)`, {
      details: { field: 'value', size: input.byteLength, limit: MAX_SECRET_VALUE_BYTES },
    });
  }
  return input;
}

/** The key under which a usage is unique. */
export function usageKey(usage: SecretUsage): string {
  return usage.type === 'volume' ? `volume\0${usage.volume}` : `text\0${usage.text}`;
}

/** A usage as a message names it: `volume "default/web1.qcow2"`. */
export function describeUsage(usage: SecretUsage): string {
  return usage.type === 'volume' ? `volume ${quote(usage.volume)}` : `text ${quote(usage.text)}`;
}
