// The lockfile plugin's flock(1) self-check runs once per identity (boot, flock binary,
// lockspace), not once per shim start; any change to that identity runs it again, and a failed
// check is never remembered.
import { chmodSync, mkdirSync, readFileSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { checkOncePerIdentity, flockCheckKey } from '../../../../drivers/lock/flock-check-cache.js';
import { builtinLockPlugins } from '../../../../drivers/lock/builtin.js';
import { loadLockManager } from '../../../../drivers/lock/loader.js';
import { systemClock } from '../../../../protocol/clock.js';
import { tmpRoot, type TmpRoot } from '../../../helpers/tmp-root.js';

let root: TmpRoot;
beforeEach(() => { root = tmpRoot('vq-flockc-'); });
afterEach(() => { root.remove(); });

function setup(): { bin: string; space: string; boot: string; markers: string } {
  const bin = root.path('flock');
  writeFileSync(bin, '#!/bin/sh\nexit 0\n');
  chmodSync(bin, 0o755);
  const space = root.path('space');
  mkdirSync(space);
  const boot = root.path('boot_id');
  writeFileSync(boot, 'boot-1\n');
  const markers = root.path('markers');
  mkdirSync(markers);
  return { bin, space, boot, markers };
}

describe('flock self-check cache', () => {
  it('checks once, then trusts the marker while boot, binary and lockspace are the same', async () => {
    const { bin, space, boot, markers } = setup();
    let checks = 0;
    const check = async () => { checks++; };
    const key = await flockCheckKey(bin, space, boot);
    expect(await checkOncePerIdentity(key, markers, check)).toBe('checked');
    expect(await checkOncePerIdentity(await flockCheckKey(bin, space, boot), markers, check)).toBe('cached');
    expect(checks).toBe(1);
    // A new boot, a replaced binary or another lockspace each run it again.
    writeFileSync(boot, 'boot-2\n');
    expect(await checkOncePerIdentity(await flockCheckKey(bin, space, boot), markers, check)).toBe('checked');
    utimesSync(bin, new Date(), new Date(Date.now() + 5000));
    expect(await checkOncePerIdentity(await flockCheckKey(bin, space, boot), markers, check)).toBe('checked');
    const other = root.path('space2');
    mkdirSync(other);
    expect(await checkOncePerIdentity(await flockCheckKey(bin, other, boot), markers, check)).toBe('checked');
    expect(checks).toBe(4);
  });

  it('never remembers a failed check, and never caches what it cannot identify', async () => {
    const { bin, space, boot, markers } = setup();
    const key = await flockCheckKey(bin, space, boot);
    await expect(checkOncePerIdentity(key, markers, async () => { throw new Error('no -E'); })).rejects.toThrow('no -E');
    let checks = 0;
    expect(await checkOncePerIdentity(key, markers, async () => { checks++; })).toBe('checked');
    expect(checks).toBe(1);
    expect(await flockCheckKey(root.path('missing-flock'), space, boot)).toBeUndefined();
    expect(await flockCheckKey('no-such-flock-binary-anywhere', space, boot)).toBeUndefined();
    expect(await checkOncePerIdentity(undefined, markers, async () => { checks++; })).toBe('checked');
    expect(await checkOncePerIdentity(undefined, markers, async () => { checks++; })).toBe('checked');
    expect(checks).toBe(3);
    // A marker with other content (garbage, another identity) is not trusted.
    writeFileSync(join(markers, 'flock-checked.json'), 'garbage');
    expect(await checkOncePerIdentity(key, markers, async () => { checks++; })).toBe('checked');
    expect(readFileSync(join(markers, 'flock-checked.json'), 'utf8')).toBe(key);
  });

  it('the lockfile plugin still refuses a flock that fails its check, and passes with the real one (cached the second time)', async () => {
    const dirs = { config: root.path('etc'), state: root.path('lib'), runtime: root.path('run') };
    mkdirSync(dirs.config, { recursive: true });
    const bad = root.path('bad-flock');
    writeFileSync(bad, '#!/bin/sh\necho "flock: unknown option -- E" >&2\nexit 64\n');
    chmodSync(bad, 0o755);
    writeFileSync(join(dirs.config, 'lock.json'), JSON.stringify({ plugin: 'lockfile', flock: bad }));
    const load = () => loadLockManager(dirs, builtinLockPlugins(), { host: 'h1', clock: systemClock() });
    expect((await load()).status).toMatchObject({ ok: false });
    expect((await load()).status).toMatchObject({ ok: false });
    writeFileSync(join(dirs.config, 'lock.json'), JSON.stringify({ plugin: 'lockfile' }));
    expect((await load()).status).toMatchObject({ ok: true });
    expect(readFileSync(join(dirs.runtime, 'leases', 'flock-checked.json'), 'utf8')).toContain('"flock":"flock"');
    expect((await load()).status).toMatchObject({ ok: true });
  });
});
