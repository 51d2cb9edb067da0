// Loading the configured lock plugin: the default with no etc/lock.json, the built-ins, plugin
// modules by absolute path, and every way the ABI version and feature checks refuse a plugin.
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { systemClock } from '../../../../protocol/clock.js';
import { VirtqError } from '../../../../protocol/errors.js';
import { builtinLockPlugins } from '../../../../drivers/lock/builtin.js';
import { checkLockPlugin, loadLockManager, lockManagerStatus, type LockDirs } from '../../../../drivers/lock/loader.js';
import { LOCK_ABI_VERSION, REQUIRED_LOCK_FEATURES, type LockPlugin } from '../../../../drivers/lock/types.js';

let root = '';
let dirs: LockDirs;

beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), 'virtq-lockload-'));
  dirs = { config: join(root, 'etc'), state: join(root, 'lib'), runtime: join(root, 'run') };
  mkdirSync(dirs.config, { recursive: true });
});
afterEach(() => { rmSync(root, { recursive: true, force: true }); });

const configure = (value: unknown): void => writeFileSync(join(dirs.config, 'lock.json'), typeof value === 'string' ? value : JSON.stringify(value));
const load = () => loadLockManager(dirs, builtinLockPlugins(), { host: 'h1', clock: systemClock() });

/** A plugin module written to disk, as a third party would ship it. */
function pluginModule(body: string): string {
  const file = join(root, `plugin-${Math.random().toString(36).slice(2)}.mjs`);
  writeFileSync(file, body);
  return file;
}

const goodPlugin: LockPlugin = {
  name: 'good', abiVersion: LOCK_ABI_VERSION, features: [...REQUIRED_LOCK_FEATURES], enforcing: true,
  create: () => Promise.reject(new Error('not used')),
};

/** The reason checkLockPlugin gives, or undefined when it accepts. */
function refusal(candidate: unknown): string | undefined {
  try {
    checkLockPlugin(candidate, 'p');
    return undefined;
  } catch (err) {
    expect(err).toBeInstanceOf(VirtqError);
    expect((err as VirtqError).code).toBe('LOCK_MANAGER_UNAVAILABLE');
    return (err as VirtqError).message;
  }
}

describe('checkLockPlugin', () => {
  it('accepts a plugin with this ABI and every required feature', () => {
    expect(refusal(goodPlugin)).toBeUndefined();
  });

  it('refuses a plugin written for another lock ABI version, naming both versions', () => {
    expect(refusal({ ...goodPlugin, abiVersion: LOCK_ABI_VERSION + 1 })).toBe(
      `lock plugin "p" was written for lock ABI version ${LOCK_ABI_VERSION + 1}; this virtq speaks lock ABI version ${LOCK_ABI_VERSION}`);
    expect(refusal({ ...goodPlugin, abiVersion: undefined })).toContain('declares no abiVersion');
  });

  it('refuses an enforcing plugin that lacks a required feature', () => {
    expect(refusal({ ...goodPlugin, features: ['exclusive', 'shared'] })).toContain('lacks required features: hotplug, outlives-shim');
  });

  it('accepts an explicit opt-out without features', () => {
    expect(refusal({ ...goodPlugin, features: [], enforcing: false })).toBeUndefined();
  });

  it('refuses a plugin that requires a host capability virtq does not offer', () => {
    expect(refusal({ ...goodPlugin, requires: ['inherit-fds', 'migration-handoff'] })).toContain('requires host capabilities this virtq lacks: migration-handoff');
  });

  it('refuses things that are not plugins', () => {
    expect(refusal(undefined)).toContain('is not a lock plugin');
    expect(refusal({ abiVersion: LOCK_ABI_VERSION })).toContain('is not a lock plugin');
    expect(refusal({ ...goodPlugin, features: 'all' })).toContain('declares no feature list');
  });
});

describe('loadLockManager', () => {
  it('uses the lockfile plugin with a lockspace under the state dir when etc/lock.json is absent', async () => {
    const loaded = await load();
    expect(loaded.status).toEqual({ plugin: 'lockfile', ok: true });
    expect(loaded.manager).toBeDefined();
    expect(existsSync(join(dirs.state, 'lockspace'))).toBe(true);
  });

  it('honours a configured lockspace', async () => {
    const space = join(root, 'shared', 'space');
    configure({ plugin: 'lockfile', lockspace: space });
    expect((await load()).status.ok).toBe(true);
    expect(existsSync(space)).toBe(true);
  });

  it('loads the lockfile plugin with perl: false (flock(1) holders) and with a missing perl (the same, with a warning)', async () => {
    configure({ plugin: 'lockfile', perl: false });
    expect((await load()).status.ok).toBe(true);
    const warnings: string[] = [];
    const onWarning = (w: Error): void => { warnings.push(w.message); };
    process.on('warning', onWarning);
    try {
      configure({ plugin: 'lockfile', perl: '/nonexistent/perl' });
      expect((await load()).status.ok).toBe(true);
      await new Promise((resolve) => setImmediate(resolve));
      expect(warnings.join('\n')).toContain('/nonexistent/perl not found: disk leases are taken through flock(1) children');
    } finally {
      process.off('warning', onWarning);
    }
  });

  it('loads nop as an explicit opt-out', async () => {
    configure({ plugin: 'nop' });
    const loaded = await load();
    expect(loaded.status).toEqual({ plugin: 'nop', ok: true });
    await expect(loaded.manager?.acquireForStart({ vm: 'a', uuid: 'u', shimPid: 1 }, [{ path: '/x', mode: 'exclusive' }])).resolves.toMatchObject({ inheritFds: [] });
  });

  it.each([
    ['an unknown plugin name', { plugin: 'bogus' }, 'unknown lock plugin "bogus" (built in: lockfile, etcd, nop'],
    ['a relative lockspace', { plugin: 'lockfile', lockspace: 'rel/dir' }, '"lockspace" must be an absolute path'],
    ['an unknown lockfile option', { plugin: 'lockfile', lockspce: '/x' }, 'unknown lockfile option(s): lockspce'],
    ['a flock(1) that does not exist', { plugin: 'lockfile', flock: '/nonexistent/flock' }, 'cannot run /nonexistent/flock'],
    ['a relative perl', { plugin: 'lockfile', perl: 'perl' }, '"perl" must be the absolute path of perl, or false'],
    ['malformed JSON', '{"plugin": ', 'is not valid JSON'],
    ['a JSON array', '[]', 'must hold a JSON object'],
    ['a non-string plugin', { plugin: 3 }, '"plugin" must be a plugin name'],
  ])('reports %s as unavailable, saying why', async (_what, config, why) => {
    configure(config);
    const loaded = await load();
    expect(loaded.manager).toBeUndefined();
    expect(loaded.status.ok).toBe(false);
    expect(loaded.status.error).toContain(why);
  });

  it('loads a plugin module named by absolute path', async () => {
    const file = pluginModule(`export const lockPlugin = { name: 'ext', abiVersion: ${LOCK_ABI_VERSION}, features: [], enforcing: false,
      create: async (config) => ({ config, resourceKey: async (p) => p }) };`);
    configure({ plugin: file, extra: 1 });
    const loaded = await load();
    expect(loaded.status).toEqual({ plugin: file, ok: true });
    expect((loaded.manager as unknown as { config: unknown }).config).toEqual({ plugin: file, extra: 1 });
  });

  it('refuses a plugin module whose version check fails, saying why', async () => {
    const file = pluginModule(`export default { name: 'old', abiVersion: 99, features: [], enforcing: true, create: async () => ({}) };`);
    configure({ plugin: file });
    const loaded = await load();
    expect(loaded.status).toEqual({ plugin: file, ok: false, error: `lock plugin "${file}" was written for lock ABI version 99; this virtq speaks lock ABI version ${LOCK_ABI_VERSION}` });
  });

  it('reports a plugin module that cannot be imported or whose create fails', async () => {
    configure({ plugin: join(root, 'missing.mjs') });
    expect((await load()).status.error).toContain('cannot load lock plugin module');
    const file = pluginModule(`export const lockPlugin = { name: 'x', abiVersion: ${LOCK_ABI_VERSION}, features: [], enforcing: false,
      create: async () => { throw new Error('no SAN reachable'); } };`);
    configure({ plugin: file });
    expect((await load()).status).toEqual({ plugin: file, ok: false, error: 'no SAN reachable' });
  });
});

describe('lockManagerStatus', () => {
  it('returns the plugin name and whether it is usable, for server info', async () => {
    await expect(lockManagerStatus(dirs)).resolves.toEqual({ plugin: 'lockfile', ok: true });
    configure({ plugin: 'bogus' });
    await expect(lockManagerStatus(dirs)).resolves.toMatchObject({ plugin: 'bogus', ok: false, error: expect.stringContaining('unknown lock plugin') });
  });
});
