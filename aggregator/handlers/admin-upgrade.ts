// `admin.upgradeShims`: `virtq admin upgrade NAME | --all`. Each shim upgrades itself (its own
// admin `upgrade`, decision 0021); this runs them a few at a time so a host with many VMs is not
// flooded with starting Node processes, and reports each shim's outcome on its own: one that
// fails was rolled back and still serves its VM.
import type { Static } from '@sinclair/typebox';
import { VirtqError } from '../../protocol/index.js';
import type { ShimUpgrade } from '../../protocol/admin-program.js';
import { isActive, type DomainRegistry } from '../registry.js';
import type { ShimPool } from '../shim-pool.js';

const DEFAULT_PARALLEL = 2;
const DEFAULT_TIMEOUT_SEC = 120;

/** One shim's outcome. */
export interface ShimUpgradeResult {
  name: string;
  ok: boolean;
  result?: Static<typeof ShimUpgrade>;
  error?: { code: string; message: string };
}

/** Upgrades the shim of `name`, or of every running VM with `all`. */
export async function upgradeShims(
  registry: DomainRegistry, pool: ShimPool, args: { name?: string; all?: boolean; parallel?: number; timeoutSec?: number },
): Promise<{ results: ShimUpgradeResult[] }> {
  if ((args.name === undefined) === (args.all !== true)) throw new VirtqError('INVALID_ARG', 'give a VM name or --all, not both nor neither');
  const running = [...registry.all()].filter((r) => r.shim !== undefined && r.shimUp && isActive(r));
  let targets = running;
  if (args.name !== undefined) {
    const r = registry.get(args.name);
    if (r === undefined) throw new VirtqError('NO_DOMAIN', `no VM named "${args.name}"`);
    targets = running.filter((t) => t.name === r.name);
    if (targets.length === 0) throw new VirtqError('OPERATION_INVALID', `VM "${args.name}" has no running shim to upgrade`);
  }
  const timeoutMs = (args.timeoutSec ?? DEFAULT_TIMEOUT_SEC) * 1000;
  const queue = [...targets].sort((a, b) => (a.name < b.name ? -1 : 1));
  const results: ShimUpgradeResult[] = [];
  const worker = async (): Promise<void> => {
    for (let r = queue.shift(); r !== undefined; r = queue.shift()) {
      try {
        const socket = r.shim?.adminSocket as string;
        const client = await pool.get(socket, r.name);
        const result = await client.call('admin', 'upgrade', {}, { timeoutMs }) as Static<typeof ShimUpgrade>;
        // This connection is the one the old shim kept open for its reply, and that shim now exits:
        // the next call (an upgrade of the successor, a metrics scrape) must connect afresh to reach the successor.
        pool.drop(socket);
        results.push({ name: r.name, ok: true, result });
      } catch (err) {
        const e = VirtqError.from(err);
        results.push({ name: r.name, ok: false, error: { code: e.code, message: e.message } });
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(args.parallel ?? DEFAULT_PARALLEL, Math.max(queue.length, 1)) }, worker));
  return { results: results.sort((a, b) => (a.name < b.name ? -1 : 1)) };
}
