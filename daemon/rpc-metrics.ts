// RPC metrics shared by both daemons: calls by procedure and result code, and their latency.
// Procedure labels come from the catalogue only; anything else a client sends is "other".
import { Counter, Histogram, type Registry } from 'prom-client';
import { adminProgram, registryProgram, virtqProgram } from '../protocol/index.js';
import { metricCatalogue as m } from './metrics-catalogue.js';

const KNOWN = new Set<string>([
  ...Object.keys(virtqProgram.procs).map((p) => `virtq.${p}`),
  ...Object.keys(registryProgram.procs).map((p) => `registry.${p}`),
  ...Object.keys(adminProgram.procs).map((p) => `admin.${p}`),
]);

/** Registers the RPC metrics on `registry`; returns the server's onCallDone hook. */
export function rpcMetrics(registry: Registry): (prog: string, proc: string, code: string, seconds: number) => void {
  const requests = new Counter({ name: m.rpcRequests.name, help: m.rpcRequests.help, labelNames: ['procedure', 'code'], registers: [registry] });
  const duration = new Histogram({
    name: m.rpcDuration.name, help: m.rpcDuration.help, labelNames: ['procedure'], registers: [registry],
    buckets: [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.01, 0.05, 0.25, 1, 5, 30],
  });
  return (prog, proc, code, seconds) => {
    const key = `${prog}.${proc}`;
    const procedure = KNOWN.has(key) ? key : 'other';
    requests.inc({ procedure, code });
    duration.observe({ procedure }, seconds);
  };
}
