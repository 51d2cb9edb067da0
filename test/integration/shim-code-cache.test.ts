// The shim's code cache (shim/code-cache.ts): the first start under a root writes one after it
// (3 s later), every later shim of that root, cold or from the warm pool, loads it, and a cache V8
// refuses (corrupt, or made by another node) costs nothing but the cache: the VM starts and a
// fresh cache replaces it.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DaemonHarness } from '../helpers/daemon-harness.js';
import { listedPool, until } from '../helpers/shim-pool-probe.js';
import { idleGuest } from '../helpers/test-guest.js';
import { tmpRoot } from '../helpers/tmp-root.js';

const idleDef = (name: string) => ({ name, memoryMiB: 32, vcpus: 1, accel: 'tcg' as const, kernel: { path: idleGuest().kernel } });

describe('shim code cache', () => {
  let h: DaemonHarness;
  beforeEach(() => { h = new DaemonHarness(tmpRoot()); });
  afterEach(async () => { await h.cleanup(); });

  const cacheDir = (): string => h.root.path('lib', 'cache');
  const caches = (): string[] => (existsSync(cacheDir()) ? readdirSync(cacheDir()).filter((f) => f.startsWith('virtq-shim-')) : []);
  /** The shim's SHIM_CODE_CACHE line, once it is written (3 s after the start). */
  const cacheLine = (name: string) => until(h, `${name}'s code cache line`, () => {
    const file = h.root.path('log', `${name}.log`);
    if (!existsSync(file)) return undefined;
    const lines = readFileSync(file, 'utf8').split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as Record<string, unknown>);
    return lines.find((l) => l['msgId'] === 'SHIM_CODE_CACHE');
  });

  it('is written after the first start, loaded by later cold and pooled shims, and replaced when V8 refuses it', async () => {
    let daemon = await h.startDaemon(['--shim-pool', '0']);
    let { api } = await h.client();
    expect(await api.create({ definition: idleDef('cc1') })).toMatchObject({ state: 'running' });
    expect(await cacheLine('cc1')).toMatchObject({ loaded: 'none', loadedKind: null, saved: 'start' });
    const [file] = caches();
    expect(caches()).toEqual([expect.stringMatching(new RegExp(`^virtq-shim-[0-9a-f]{16}-${process.version.replace(/\./g, '\\.')}-${process.arch}-start\\.v8$`))]);
    const path = join(cacheDir(), file as string);

    // A cold shim takes it and writes nothing.
    const written = readFileSync(path);
    expect(await api.create({ definition: idleDef('cc2') })).toMatchObject({ state: 'running' });
    expect(await cacheLine('cc2')).toMatchObject({ loaded: 'accepted', loadedKind: 'start', saved: null });
    expect(readFileSync(path).equals(written)).toBe(true);
    daemon.proc.kill('SIGTERM');
    await daemon.exited;

    // A pool shim, started once the cache is there, loads it before it waits for its definition.
    daemon = await h.startDaemon(['--shim-pool', '1']);
    ({ api } = await h.client());
    await until(h, 'an idle pool shim', async () => ((await listedPool(h)).idle.length === 1 ? true : undefined));
    expect(await api.create({ definition: idleDef('cc3') })).toMatchObject({ state: 'running' });
    expect(await cacheLine('cc3')).toMatchObject({ loaded: 'accepted', saved: null });
    daemon.proc.kill('SIGTERM');
    await daemon.exited;

    // A cache V8 refuses: the VM starts as without one, and a fresh cache replaces it.
    writeFileSync(path, Buffer.alloc(written.length, 0x5a));
    daemon = await h.startDaemon(['--shim-pool', '0']);
    ({ api } = await h.client());
    expect(await api.create({ definition: idleDef('cc4') })).toMatchObject({ state: 'running' });
    await expect(api.getState({ name: 'cc4' })).resolves.toMatchObject({ state: 'running' });
    expect(await cacheLine('cc4')).toMatchObject({ loaded: 'rejected', loadedKind: 'start', saved: 'start' });
    expect(readFileSync(path).equals(Buffer.alloc(written.length, 0x5a))).toBe(false);
    expect(caches()).toEqual([file]);
  }, 120_000);
});
