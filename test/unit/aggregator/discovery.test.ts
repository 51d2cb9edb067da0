// recover(): a shim whose process stands is listed up at once, without a socket probe (the first
// reconciliation pass probes it later); a VM whose QEMU is gone is listed as lost while
// virtqemud was down whatever its shim; with probeMs > 0 every socket is probed first, as before.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { randomUUID } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { UNDEFINE_SOURCE_NOTE, normalizeDefinition, rootLayout, shimDir, shimStateFile, silentLogger, systemClock, type Layout } from '../../../protocol/index.js';
import { recover } from '../../../aggregator/discovery.js';
import { DefinitionStore } from '../../../aggregator/definitions.js';
import { DomainRegistry } from '../../../aggregator/registry.js';
import { tmpRoot, type TmpRoot } from '../../helpers/tmp-root.js';

const children: ChildProcess[] = [];
let tmp: TmpRoot | undefined;

afterEach(() => {
  // The whole group: sh forks its sleep, which killing sh alone would leave running.
  for (const c of children.splice(0)) {
    try { process.kill(-(c.pid as number), 'SIGKILL'); } catch { /* gone */ }
  }
  tmp?.remove();
  tmp = undefined;
});

/** A process standing in for a shim or QEMU; `marker` shows up in its command line. */
function standing(marker: string): number {
  const c = spawn('sh', ['-c', 'sleep 60', marker], { stdio: 'ignore', detached: true });
  children.push(c);
  return c.pid as number;
}

async function exitedPid(): Promise<number> {
  const c = spawn('true', [], { stdio: 'ignore' });
  await new Promise((r) => c.once('exit', r));
  return c.pid as number;
}

function writeState(layout: Layout, name: string, uuid: string, shimPid: number, qemuPid: number | undefined, state = 'running', reason = 'booted', details?: Record<string, unknown>): void {
  const sock = (k: string): string => `${shimDir(layout)}/${name}-${k}.sock`;
  writeFileSync(shimStateFile(layout, name), JSON.stringify({
    format: 1, name, uuid, shimPid, qemuPid, qemuStartedAt: 1, accel: 'tcg', definition: { name, uuid },
    sockets: { rw: sock('rw'), ro: sock('ro'), admin: sock('admin'), monitor: sock('mon'), console: sock('con') },
    state, reason, tainted: false, private: false, updatedAt: 1, ...(details === undefined ? {} : { details }),
  }));
}

async function setUp(): Promise<{ layout: Layout; live: string; dead: string }> {
  tmp = tmpRoot('vq-disc-');
  const layout = rootLayout(tmp.dir);
  mkdirSync(shimDir(layout), { recursive: true });
  mkdirSync(layout.config, { recursive: true });
  const live = randomUUID();
  const dead = randomUUID();
  // live1: shim and QEMU processes stand, but nothing listens on its socket.
  writeState(layout, 'live1', live, standing('shim'), standing(live));
  // dead1: shim and QEMU are gone: the VM died while virtqemud was down.
  writeState(layout, 'dead1', dead, await exitedPid(), await exitedPid());
  return { layout, live, dead };
}

describe('recover', () => {
  it('lists a shim whose process stands as up, without probing its socket', async () => {
    const { layout } = await setUp();
    const registry = new DomainRegistry();
    const report = await recover(registry, new DefinitionStore(layout.config, silentLogger()), layout, systemClock(), silentLogger());
    expect(registry.get('live1')).toMatchObject({ state: 'running', shimUp: true });
    expect(registry.get('dead1')).toMatchObject({ state: 'crashed', reason: 'lost-while-virtqemud-was-down' });
    expect(report).toMatchObject({ liveShims: 1, stopped: 1 });
  });

  it('lists a shim whose process is gone as lost while its QEMU runs', async () => {
    const { layout, live } = await setUp();
    writeState(layout, 'live1', live, await exitedPid(), standing(live));
    const registry = new DomainRegistry();
    const report = await recover(registry, new DefinitionStore(layout.config, silentLogger()), layout, systemClock(), silentLogger());
    expect(registry.get('live1')).toMatchObject({ state: 'running', shimUp: false });
    expect(report).toMatchObject({ liveShims: 0, lostShims: 1 });
  });

  // Found by the cluster chaos suite (seed 210002): a transient VM destroyed on one host came back
  // after that host's virtqemud restarted, listed shutoff, and took its name back from the fleet.
  it('does not bring back a transient VM that ended before virtqemud went down', async () => {
    const { layout } = await setUp();
    writeState(layout, 'gone1', randomUUID(), await exitedPid(), undefined, 'shutoff', 'destroyed');
    writeState(layout, 'crash1', randomUUID(), await exitedPid(), undefined, 'crashed', 'crashed');
    const registry = new DomainRegistry();
    const report = await recover(registry, new DefinitionStore(layout.config, silentLogger()), layout, systemClock(), silentLogger());
    expect(registry.get('gone1')).toBeUndefined();
    expect(registry.get('crash1')).toBeUndefined();
    // Still listed: the VM that died while virtqemud was down (its end is news), and the live one.
    expect(registry.get('dead1')).toMatchObject({ state: 'crashed', reason: 'lost-while-virtqemud-was-down' });
    expect(registry.get('live1')).toMatchObject({ state: 'running' });
    expect(report).toMatchObject({ liveShims: 1, stopped: 1 });
    // The end recovery found (and wrote down) keeps it listed across the next restart too.
    const again = new DomainRegistry();
    await recover(again, new DefinitionStore(layout.config, silentLogger()), layout, systemClock(), silentLogger());
    expect(again.get('dead1')).toMatchObject({ state: 'crashed', reason: 'lost-while-virtqemud-was-down' });
    expect(again.get('gone1')).toBeUndefined();
  });

  // Cluster chaos seed 29509 (session 30): a defined VM migrated away with --undefine-source while
  // virtqemud was down; its shim, gone before virtqemud came back, left the undefine owed.
  it('reports the defined VMs whose migration still owes their undefine here, and no other', async () => {
    const { layout } = await setUp();
    const store = new DefinitionStore(layout.config, silentLogger());
    const ids = { away1: randomUUID(), kept1: randomUUID(), waits1: randomUUID() };
    for (const [name, uuid] of Object.entries(ids)) await store.save(normalizeDefinition({ name, uuid, memoryMiB: 32, vcpus: 1, disks: [] }, randomUUID));
    writeState(layout, 'away1', ids.away1, await exitedPid(), undefined, 'shutoff', 'migrated', { [UNDEFINE_SOURCE_NOTE]: true });
    // Migrated without --undefine-source: the definition stays, as libvirt's does.
    writeState(layout, 'kept1', ids.kept1, await exitedPid(), undefined, 'shutoff', 'migrated');
    // Its shim still stands: it removes the definition itself once virtqemud answers.
    writeState(layout, 'waits1', ids.waits1, standing('shim'), undefined, 'shutoff', 'migrated', { [UNDEFINE_SOURCE_NOTE]: true });
    const registry = new DomainRegistry();
    const report = await recover(registry, store, layout, systemClock(), silentLogger());
    expect(report.movedAway).toEqual(['away1']);
    expect(registry.get('away1')).toMatchObject({ persistent: true, state: 'shutoff', reason: 'migrated' });
  });

  it('probes every socket first when asked to (probeMs > 0)', async () => {
    const { layout } = await setUp();
    const registry = new DomainRegistry();
    await recover(registry, new DefinitionStore(layout.config, silentLogger()), layout, systemClock(), silentLogger(), 200);
    expect(registry.get('live1')).toMatchObject({ state: 'running', shimUp: false });
    expect(registry.get('dead1')).toMatchObject({ state: 'crashed' });
  });
});
