// What a shim and its successor say to each other during an upgrade (decision 0021): which of the
// successor's fds is which socket (its `--handover` argument), and the three messages on the
// IPC channel between them: `ready` (successor started, all code loaded), `take` (the old shim
// has stopped reading everything; here is what it had read of QMP but not parsed), `taken`
// (the successor serves the VM). Everything that crosses is checked: the successor trusts
// neither its command line nor the channel more than any other input.
import { VirtqError } from '../../protocol/index.js';

/** The sockets a successor takes over, by the fd they have in the successor. */
export interface HandoverFds {
  rw: number;
  ro: number;
  admin: number;
  monitorListener: number;
  consoleListener: number;
  /** The negotiated QMP connection to QEMU. */
  qmp: number;
  /** QEMU's serial console connection, when QEMU was connected to it. */
  console?: number;
}

const KEYS = ['rw', 'ro', 'admin', 'monitorListener', 'consoleListener', 'qmp', 'console'] as const;
const REQUIRED = new Set<string>(['rw', 'ro', 'admin', 'monitorListener', 'consoleListener', 'qmp']);
/** fd 0-2 are stdio and 3 is the IPC channel: handed-over sockets start at 4. */
export const FIRST_HANDOVER_FD = 4;
const MAX_FD = 1023;

/** `rw=4,ro=5,...`: the successor's `--handover` argument. */
export function formatHandoverFds(fds: HandoverFds): string {
  return KEYS.filter((k) => fds[k] !== undefined).map((k) => `${k}=${String(fds[k])}`).join(',');
}

/** Parses `--handover`; INVALID_ARG naming what is wrong (unknown key, repeated fd, missing socket). */
export function parseHandoverFds(text: string): HandoverFds {
  if (text.length > 512) throw new VirtqError('INVALID_ARG', '--handover is too long');
  const out: Record<string, number> = {};
  const seen = new Set<number>();
  for (const part of text.split(',')) {
    const m = /^([A-Za-z]+)=(\d{1,4})$/.exec(part);
    if (m === null) throw new VirtqError('INVALID_ARG', `--handover: "${part.slice(0, 40)}" is not NAME=FD`);
    const [, key, value] = m as unknown as [string, string, string];
    if (!(KEYS as readonly string[]).includes(key)) throw new VirtqError('INVALID_ARG', `--handover: unknown socket "${key}" (known: ${KEYS.join(', ')})`);
    const fd = Number(value);
    if (fd < FIRST_HANDOVER_FD || fd > MAX_FD) throw new VirtqError('INVALID_ARG', `--handover: fd ${fd} for ${key} is outside ${FIRST_HANDOVER_FD}..${MAX_FD}`);
    if (key in out) throw new VirtqError('INVALID_ARG', `--handover: ${key} is given twice`);
    if (seen.has(fd)) throw new VirtqError('INVALID_ARG', `--handover: fd ${fd} is given for two sockets`);
    seen.add(fd);
    out[key] = fd;
  }
  const missing = [...REQUIRED].filter((k) => !(k in out));
  if (missing.length > 0) throw new VirtqError('INVALID_ARG', `--handover: missing ${missing.join(', ')}`);
  return out as unknown as HandoverFds;
}

/** The old shim to the successor: take over now. */
export interface TakeMessage {
  type: 'take';
  /** QMP bytes read but not yet a whole message, base64. */
  qmpLeftover: string;
  /** The QMP session (QEMU's greeting), so the successor needs no handshake. */
  qmpSession: unknown;
}

/** The successor to the old shim. */
export type SuccessorMessage = { type: 'ready' } | { type: 'taken'; pid: number } | { type: 'failed'; code: string; message: string };

const MAX_LEFTOVER_B64 = 1024 * 1024;

/** Checks a message from the old shim; INVALID_ARG for anything else. */
export function parseTake(msg: unknown): TakeMessage & { leftover: Buffer } {
  const m = msg as Partial<TakeMessage> | null;
  if (typeof m !== 'object' || m === null || m.type !== 'take' || typeof m.qmpLeftover !== 'string' || m.qmpLeftover.length > MAX_LEFTOVER_B64 || !/^[A-Za-z0-9+/]*={0,2}$/.test(m.qmpLeftover)) {
    throw new VirtqError('INVALID_ARG', 'handover: expected a take message from the old shim');
  }
  return { type: 'take', qmpLeftover: m.qmpLeftover, qmpSession: m.qmpSession, leftover: Buffer.from(m.qmpLeftover, 'base64') };
}

/** Checks a message from the successor; undefined for anything that is none of them. */
export function parseSuccessorMessage(msg: unknown): SuccessorMessage | undefined {
  const m = msg as { type?: unknown; pid?: unknown; code?: unknown; message?: unknown } | null;
  if (typeof m !== 'object' || m === null) return undefined;
  if (m.type === 'ready') return { type: 'ready' };
  if (m.type === 'taken' && typeof m.pid === 'number' && Number.isInteger(m.pid)) return { type: 'taken', pid: m.pid };
  if (m.type === 'failed' && typeof m.code === 'string' && typeof m.message === 'string') return { type: 'failed', code: m.code.slice(0, 64), message: m.message.slice(0, 2000) };
  return undefined;
}

/**
 * The successor's command line from the old shim's: the same options (root, layout, QEMU,
 * daemons, log filters, metrics), but `--attach NAME --handover FDS` instead of a definition,
 * and none of the start's own flags (`--paused`, `--restore`, `--incoming`, `--start-request`:
 * the VM's state comes from QEMU now) nor `--log-stderr` (its stderr is a pipe to the old shim,
 * which exits).
 */
export function successorArgs(argv: readonly string[], name: string, fds: HandoverFds): string[] {
  const out: string[] = [];
  const withValue = new Set(['--definition', '--attach', '--handover', '--restore', '--incoming']);
  const dropped = new Set(['--paused', '--log-stderr', '--start-request']);
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    const flag = a.split('=')[0] as string;
    if (withValue.has(flag)) {
      if (!a.includes('=')) i++;
      continue;
    }
    if (dropped.has(a)) continue;
    out.push(a);
  }
  return [...out, '--attach', name, '--handover', formatHandoverFds(fds)];
}
