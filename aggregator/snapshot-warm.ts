// What virtqemud's snapshot builder runs before the heap is saved (aggregator/snapshot-main.ts):
// a whole virtqemud in a temporary root — a VM defined, listed, the daemon stopped, started again
// (recovery reads the definition back, and finds a VM whose shim stands: a state file naming the
// builder's own process, so recovery's path for live shims is compiled too), listed again, stopped — so the code a restart's first
// listing runs (option parsing, the framework, recovery, the definition's and the catalogue's
// validators, the listing's encoding) is compiled and its lazily built tables made in the snapshot.
// Nothing it makes survives it: its sockets and files are closed and the root removed, and a
// deserialized virtqemud builds its own service, logs and registry as aggregator/main.ts does.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RpcClient, shimDir, shimStateFile, systemClock, type Layout } from '../protocol/index.js';
import { startService, type ServiceDefinition } from '../daemon/run-service.js';
import { parseDaemonArgs } from '../daemon/options.js';
import type { VirtqemudOptions } from './compose.js';

/** Starts `def` twice in a temporary root, defining and listing one VM; throws if anything fails. */
export async function warmVirtqemud(def: ServiceDefinition<VirtqemudOptions>): Promise<void> {
  const root = mkdtempSync(join(tmpdir(), 'virtqemud-snapshot-'));
  try {
    // No shim is spawned: no warm pool, no reconciliation pass, no VM started.
    const { common, values } = parseDaemonArgs(['--root', root, '--shim-pool', '0', '--reconcile-ms', '0'], def.options ?? {}, 0);
    const extra = def.parseExtra(values, {});
    const clock = systemClock();
    for (const round of [0, 1]) {
      const running = await startService(def, common, extra, {}, clock, [], { processMetrics: false });
      try {
        const rpc = await RpcClient.connect(running.sockets.rw, { clock, defaultTimeoutMs: 10_000 });
        try {
          if (round === 0) {
            await rpc.call('virtq', 'define', { definition: { name: 'warm', memoryMiB: 32, vcpus: 1, kernel: { path: '/nonexistent/warm-kernel' } } });
            writeLiveState(running.layout);
          }
          await rpc.call('virtq', 'listDomains', {});
          await rpc.call('virtq', 'listDomains', { all: true }).catch(() => undefined);
        } finally {
          rpc.close();
        }
      } finally {
        await running.close();
        running.logs.flush();
      }
    }
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

// A running transient VM as its shim's state file describes it, the shim being this process (which
// stands, so recovery adopts it without any socket; its QEMU pid is this process too, whose
// command line names no VM, so it is not taken for a live QEMU). Fixed values: nothing of the
// build's host or time is kept, and the root is removed with it (decision 0032).
function writeLiveState(layout: Layout): void {
  const name = 'warmlive';
  const uuid = '00000000-0000-4000-8000-000000000001';
  const sock = (kind: string): string => join(shimDir(layout), `${name}-${kind}.sock`);
  mkdirSync(shimDir(layout), { recursive: true });
  writeFileSync(shimStateFile(layout, name), JSON.stringify({
    format: 1, name, uuid, shimPid: process.pid, qemuPid: process.pid, qemuStartedAt: 0, accel: 'tcg',
    sockets: { rw: sock('rw'), ro: sock('ro'), admin: sock('admin'), monitor: sock('qmp'), console: sock('console') },
    definition: { name, uuid, memoryMiB: 32, vcpus: 1, kernel: { path: '/nonexistent/warm-kernel' } },
    state: 'running', reason: 'booted', tainted: false, private: false, registered: true, updatedAt: 0,
  }));
}

