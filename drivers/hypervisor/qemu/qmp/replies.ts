// Typed views of the QMP replies the facade returns: each parser checks the shape it relies on
// and renames QEMU's kebab-case fields; a reply missing a required member fails with INTERNAL
// naming the command, optional members become undefined.
import { VirtqError } from '../../../../protocol/errors.js';

/** `query-status`: `status` is QEMU's RunState (`prelaunch`, `running`, `paused`, `shutdown`, ...). */
export interface QmpStatus { status: string; running: boolean }

/** One entry of `query-blockstats`: a frontend device (or a node) and its I/O counters. */
export interface QmpBlockStats {
  /** The legacy drive id (`-drive id=`); undefined for -blockdev disks. */
  device: string | undefined;
  /** The QOM path of the frontend, e.g. `/machine/peripheral/vblk0/virtio-backend`. */
  qdev: string | undefined;
  nodeName: string | undefined;
  rdBytes: number;
  wrBytes: number;
  rdOperations: number;
  wrOperations: number;
  flushOperations: number;
  rdTotalTimeNs: number;
  wrTotalTimeNs: number;
  flushTotalTimeNs: number;
  failedRdOperations: number;
  failedWrOperations: number;
}

/** One entry of `query-block`: a block backend and what is inserted in it. */
export interface QmpBlockInfo {
  device: string | undefined;
  qdev: string | undefined;
  nodeName: string | undefined;
  /** The image file name, when a medium is inserted. */
  file: string | undefined;
  /** The top node's driver (`raw`, `qcow2`, ...), when a medium is inserted. */
  driver: string | undefined;
  readOnly: boolean;
  removable: boolean;
  locked: boolean;
  ioStatus: string | undefined;
}

/** One entry of `query-machines`. */
export interface QmpMachine { name: string; alias: string | undefined; isDefault: boolean; cpuMax: number; deprecated: boolean }

/** `query-kvm`. */
export interface QmpKvmInfo { enabled: boolean; present: boolean }

type Obj = Record<string, unknown>;

function malformed(command: string, what: string): VirtqError {
  return new VirtqError('INTERNAL', `malformed ${command} reply: ${what}`, { details: { command } });
}

function obj(command: string, v: unknown, what = 'expected an object'): Obj {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw malformed(command, what);
  return v as Obj;
}

function list(command: string, v: unknown): Obj[] {
  if (!Array.isArray(v)) throw malformed(command, 'expected an array');
  return v.map((e) => obj(command, e, 'expected an array of objects'));
}

const optStr = (o: Obj, k: string): string | undefined => (typeof o[k] === 'string' && o[k] !== '' ? (o[k] as string) : undefined);
const num = (o: Obj, k: string): number => (typeof o[k] === 'number' ? (o[k] as number) : 0);
const bool = (o: Obj, k: string): boolean => o[k] === true;

/** Parses a `query-status` return value. */
export function parseStatus(v: unknown): QmpStatus {
  const o = obj('query-status', v);
  if (typeof o['status'] !== 'string' || typeof o['running'] !== 'boolean') throw malformed('query-status', 'missing status or running');
  return { status: o['status'], running: o['running'] };
}

/** Parses a `query-blockstats` return value. */
export function parseBlockstats(v: unknown): QmpBlockStats[] {
  return list('query-blockstats', v).map((e) => {
    const s = obj('query-blockstats', e['stats'], 'entry without stats');
    return {
      device: optStr(e, 'device'),
      qdev: optStr(e, 'qdev'),
      nodeName: optStr(e, 'node-name'),
      rdBytes: num(s, 'rd_bytes'),
      wrBytes: num(s, 'wr_bytes'),
      rdOperations: num(s, 'rd_operations'),
      wrOperations: num(s, 'wr_operations'),
      flushOperations: num(s, 'flush_operations'),
      rdTotalTimeNs: num(s, 'rd_total_time_ns'),
      wrTotalTimeNs: num(s, 'wr_total_time_ns'),
      flushTotalTimeNs: num(s, 'flush_total_time_ns'),
      failedRdOperations: num(s, 'failed_rd_operations'),
      failedWrOperations: num(s, 'failed_wr_operations'),
    };
  });
}

/** Parses a `query-block` return value. */
export function parseBlock(v: unknown): QmpBlockInfo[] {
  return list('query-block', v).map((e) => {
    const ins = typeof e['inserted'] === 'object' && e['inserted'] !== null ? (e['inserted'] as Obj) : undefined;
    return {
      device: optStr(e, 'device'),
      qdev: optStr(e, 'qdev'),
      nodeName: ins === undefined ? undefined : optStr(ins, 'node-name'),
      file: ins === undefined ? undefined : optStr(ins, 'file'),
      driver: ins === undefined ? undefined : optStr(ins, 'drv'),
      readOnly: ins === undefined ? false : bool(ins, 'ro'),
      removable: bool(e, 'removable'),
      locked: bool(e, 'locked'),
      ioStatus: optStr(e, 'io-status'),
    };
  });
}

/** Parses a `query-commands` return value into command names. */
export function parseCommands(v: unknown): string[] {
  return list('query-commands', v).map((e) => {
    if (typeof e['name'] !== 'string') throw malformed('query-commands', 'entry without name');
    return e['name'];
  });
}

/** Parses a `query-machines` return value. */
export function parseMachines(v: unknown): QmpMachine[] {
  return list('query-machines', v).map((e) => {
    if (typeof e['name'] !== 'string') throw malformed('query-machines', 'entry without name');
    return { name: e['name'], alias: optStr(e, 'alias'), isDefault: bool(e, 'is-default'), cpuMax: num(e, 'cpu-max'), deprecated: bool(e, 'deprecated') };
  });
}

/** Parses a `query-kvm` return value. */
export function parseKvm(v: unknown): QmpKvmInfo {
  const o = obj('query-kvm', v);
  return { enabled: bool(o, 'enabled'), present: bool(o, 'present') };
}
