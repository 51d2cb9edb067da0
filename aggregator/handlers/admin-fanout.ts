// `admin.callShims`: one admin procedure run on every running VM's shim at once (raise the log
// level host-wide, read every shim's limits). Each shim answers or fails on its own; a shim that
// does not answer within the deadline is reported, not waited for.
import { VirtqError, adminProgram } from '../../protocol/index.js';
import { isActive, type DomainRegistry } from '../registry.js';
import type { ShimPool } from '../shim-pool.js';

const DEADLINE_MS = 5000;

/** Result of one shim. */
export interface ShimCallResult {
  name: string;
  ok: boolean;
  result?: unknown;
  error?: { code: string; message: string };
}

/** Calls admin `procedure` with `args` on every live shim. */
export async function callShims(registry: DomainRegistry, pool: ShimPool, procedure: string, args: Record<string, unknown>): Promise<{ results: ShimCallResult[] }> {
  if (!Object.hasOwn(adminProgram.procs, procedure) || !adminProgram.procs[procedure as keyof typeof adminProgram.procs].servers.includes('shim')) {
    throw new VirtqError('INVALID_ARG', `"${procedure}" is not an admin procedure a shim serves`);
  }
  const targets = [...registry.all()].filter((r) => r.shim !== undefined && r.shimUp && isActive(r));
  const results = await Promise.all(targets.map(async (r): Promise<ShimCallResult> => {
    try {
      const client = await pool.get(r.shim?.adminSocket as string, r.name);
      return { name: r.name, ok: true, result: await client.call('admin', procedure, args, { timeoutMs: DEADLINE_MS }) };
    } catch (err) {
      const e = VirtqError.from(err);
      return { name: r.name, ok: false, error: { code: e.code, message: e.message } };
    }
  }));
  return { results: results.sort((a, b) => (a.name < b.name ? -1 : 1)) };
}
