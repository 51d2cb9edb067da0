// HTTP listen addresses as operators write them on the command line.
import { VirtqError } from '../protocol/index.js';

/** Parses "HOST:PORT", ":PORT" or "PORT". */
export function parseHttpAddress(addr: string): { host: string; port: number } {
  const i = addr.lastIndexOf(':');
  const host = i <= 0 ? '127.0.0.1' : addr.slice(0, i).replace(/^\[|\]$/g, '');
  const port = Number(i < 0 ? addr : addr.slice(i + 1));
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new VirtqError('INVALID_ARG', `bad --http address "${addr}" (expected HOST:PORT)`);
  return { host, port };
}
