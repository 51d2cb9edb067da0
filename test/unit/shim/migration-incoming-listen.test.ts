// MigrationIncoming over a unix socket (session 19): the stale socket file is gone before QEMU is
// spawned, QEMU's argv names where it listens and turns its MIGRATION events on, and `listen`
// sends QEMU nothing at all (the prepare's answer waits for no round trip). A unix listen whose
// QEMU was not spawned that way is refused rather than left without events.
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../../../protocol/index.js';
import { INCOMING_REASON, MigrationIncoming } from '../../../shim/vm/migration-incoming.js';
import type { Vm } from '../../../shim/vm/vm.js';
import { FakeClock } from '../../helpers/fake-clock.js';

let dir = '';
beforeEach(() => { dir = mkdtempSync(join(tmpdir(), 'virtq-incoming-listen-')); });
afterEach(() => { rmSync(dir, { recursive: true, force: true }); });

/** A waiting VM whose monitor records every command written to it (none is expected). */
function heldMonitor() {
  const sent: string[] = [];
  const vm = {
    def: { name: 'in1' }, state: 'paused', reason: INCOMING_REASON, qemuPid: undefined,
    monitor: () => ({ raw: (cmd: { execute: string }): Promise<unknown> => { sent.push(cmd.execute); return Promise.resolve({}); } }),
    destroy: (): Promise<void> => Promise.resolve(),
  };
  return { vm, sent };
}

function incoming(vm: unknown, socketPath: string): MigrationIncoming {
  return new MigrationIncoming({ vm: vm as Vm, leases: { acquireAllForRunning: () => Promise.resolve() }, clock: new FakeClock(), log: silentLogger(), socketPath, transport: 'unix' });
}

describe('MigrationIncoming.listen (unix)', () => {
  it('removes the stale socket before the spawn, names it and the events in the argv, then asks QEMU nothing', async () => {
    const socketPath = join(dir, 'vm-migrate.sock');
    writeFileSync(socketPath, 'stale');
    const { vm, sent } = heldMonitor();
    const inc = incoming(vm, socketPath);
    const atSpawn = inc.spawnListening();
    expect(existsSync(socketPath)).toBe(false);
    expect(atSpawn).toEqual({ uri: `unix:${socketPath}`, qemuArgs: ['-global', 'migration.x-events=on'] });
    await inc.listen();
    expect(sent).toEqual([]);
    expect(inc.uri).toBe(`unix:${socketPath}`);
  });

  it('refuses a unix listen whose QEMU was not spawned listening', async () => {
    const socketPath = join(dir, 'vm-migrate.sock');
    const { vm, sent } = heldMonitor();
    await expect(incoming(vm, socketPath).listen()).rejects.toMatchObject({ code: 'INTERNAL' });
    expect(sent).toEqual([]);
  });

  it('is not spawned listening over TCP (QEMU picks the port there)', () => {
    const socketPath = join(dir, 'vm-migrate.sock');
    const { vm } = heldMonitor();
    const inc = new MigrationIncoming({ vm: vm as Vm, leases: { acquireAllForRunning: () => Promise.resolve() }, clock: new FakeClock(), log: silentLogger(), socketPath, transport: 'tcp' });
    expect(inc.spawnListening()).toBeUndefined();
  });
});
