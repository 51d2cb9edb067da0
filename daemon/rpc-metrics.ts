// RPC metrics shared by both daemons: calls by procedure and result code, and their latency.
// Procedure labels come from the catalogue only; anything else a client sends is "other".
import { Counter, Histogram, type Registry } from 'prom-client';
import { adminProgram, type Program } from '../protocol/index.js';
import { metricCatalogue as m } from './metrics-catalogue.js';

/** The server's hook, called once per answered call; `code` is 'OK' or the error code. */
export type OnCallDone = (prog: string, proc: string, code: string, seconds: number) => void;

/** The RPC metrics of one registry: the server's hook, and how to add a program's procedures to the known labels. */
export interface RpcMetrics {
  readonly onCallDone: OnCallDone;
  /** Procedures of `program` are labelled by name from now on (others are "other"). */
  countProgram(program: Program): void;
}

/**
 * Registers the RPC metrics on `registry` for a daemon serving `programs` (and admin, which
 * every daemon serves); returns the server's onCallDone hook.
 */
export function rpcMetrics(registry: Registry, programs: readonly Program[]): OnCallDone {
  return rpcMetricsFor(registry, programs).onCallDone;
}

/** The RPC metrics on `registry`, with the known procedure labels open to more programs. */
export function rpcMetricsFor(registry: Registry, programs: readonly Program[]): RpcMetrics {
  const KNOWN = new Set<string>();
  const countProgram = (p: Program): void => { for (const name of Object.keys(p.procs)) KNOWN.add(`${p.name}.${name}`); };
  for (const p of [...programs, adminProgram]) countProgram(p);
  const requests = new Counter({ name: m.rpcRequests.name, help: m.rpcRequests.help, labelNames: ['procedure', 'code'], registers: [registry] });
  const duration = new Histogram({
    name: m.rpcDuration.name, help: m.rpcDuration.help, labelNames: ['procedure'], registers: [registry],
    buckets: [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.01, 0.05, 0.25, 1, 5, 30],
  });
  const onCallDone: OnCallDone = (prog, proc, code, seconds) => {
    const key = `${prog}.${proc}`;
    const procedure = KNOWN.has(key) ? key : 'other';
    requests.inc({ procedure, code });
    duration.observe({ procedure }, seconds);
  };
  return { onCallDone, countProgram };
}
