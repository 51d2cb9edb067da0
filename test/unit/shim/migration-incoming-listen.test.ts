// MigrationIncoming.listen over a unix socket: the stale socket file is gone before QEMU binds it,
// and QEMU gets `migrate-set-capabilities` (events) and `migrate-incoming` at once, in that order
// (QEMU runs a monitor's commands in order), not one round trip apart; either one failing fails the
// listen (the start then stops QEMU).
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { silentLogger, VirtqError } from '../../../protocol/index.js';
import { INCOMING_REASON, MigrationIncoming } from '../../../shim/vm/migration-incoming.js';
import type { Vm } from '../../../shim/vm/vm.js';
import { FakeClock } from '../../helpers/fake-clock.js';

let dir = '';
beforeEach(() => { dir = mkdtempSync(join(tmpdir(), 'virtq-incoming-listen-')); });
afterEach(() => { rmSync(dir, { recursive: true, force: true }); });

/** A waiting VM whose monitor answers only when told: `sent` lists the commands as they were written. */
function heldMonitor(socketPath: string, fail?: string) {
  const sent: Array<{ execute: string; arguments?: unknown; socketLeft: boolean }> = [];
  const pending: Array<() => void> = [];
  const vm = {
    def: { name: 'in1' }, state: 'paused', reason: INCOMING_REASON, qemuPid: undefined,
    monitor: () => ({
      raw: (cmd: { execute: string; arguments?: unknown }): Promise<unknown> => {
        sent.push({ ...cmd, socketLeft: existsSync(socketPath) });
        return new Promise((resolve, reject) => pending.push(() => (cmd.execute === fail ? reject(new VirtqError('OPERATION_FAILED', `${fail} failed`)) : resolve({}))));
      },
    }),
    destroy: (): Promise<void> => Promise.resolve(),
  };
  return { vm, sent, answerAll: (): void => { for (const p of pending.splice(0)) p(); } };
}

function incoming(vm: unknown, socketPath: string): MigrationIncoming {
  return new MigrationIncoming({ vm: vm as Vm, leases: { acquireAllForRunning: () => Promise.resolve() }, clock: new FakeClock(), log: silentLogger(), socketPath, transport: 'unix' });
}

describe('MigrationIncoming.listen (unix)', () => {
  it('removes the stale socket, then sends both commands before either is answered', async () => {
    const socketPath = join(dir, 'vm-migrate.sock');
    writeFileSync(socketPath, 'stale');
    const { vm, sent, answerAll } = heldMonitor(socketPath);
    const inc = incoming(vm, socketPath);
    const listening = inc.listen();
    await new Promise((resolve) => setImmediate(resolve));
    expect(sent.map((c) => c.execute)).toEqual(['migrate-set-capabilities', 'migrate-incoming']);
    expect(sent.every((c) => !c.socketLeft)).toBe(true);
    expect(sent[1]?.arguments).toEqual({ uri: `unix:${socketPath}` });
    answerAll();
    await listening;
    expect(inc.uri).toBe(`unix:${socketPath}`);
  });

  it.each(['migrate-set-capabilities', 'migrate-incoming'])('fails when %s fails', async (fail) => {
    const socketPath = join(dir, 'vm-migrate.sock');
    const { vm, answerAll } = heldMonitor(socketPath, fail);
    const listening = incoming(vm, socketPath).listen();
    await new Promise((resolve) => setImmediate(resolve));
    answerAll();
    await expect(listening).rejects.toMatchObject({ code: 'OPERATION_FAILED' });
  });
});
