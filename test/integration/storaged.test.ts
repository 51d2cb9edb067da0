// virtstoraged as a user meets it, through the CLI and the client library: pools defined,
// started, stopped and brought back after a kill -9; volumes created, cloned with progress,
// uploaded and downloaded; a kill -9 in the middle of a clone leaves no half volume; the
// read-only socket reads and refuses changes.
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { promisify } from 'node:util';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { connectStorage, type JobProgress } from '../../client/index.js';
import { ServiceHarness } from '../helpers/service-harness.js';
import { tmpRoot } from '../helpers/tmp-root.js';

const run = promisify(execFile);
const CLI = new URL('../../dist/bin/virtq.js', import.meta.url).pathname;
const MiB = 1024 * 1024;

describe('virtstoraged', () => {
  let h: ServiceHarness;
  beforeEach(() => { h = new ServiceHarness(tmpRoot()); });
  afterEach(() => h.cleanup());
  const virtq = async (...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> => {
    try {
      const r = await run(process.execPath, [CLI, '-c', h.uri('qemu'), ...args]);
      return { code: 0, stdout: r.stdout, stderr: r.stderr };
    } catch (err) {
      const e = err as { code: number; stdout: string; stderr: string };
      return { code: e.code, stdout: e.stdout, stderr: e.stderr };
    }
  };

  it('runs pools and volumes from the CLI, and brings its active pools back after kill -9', async () => {
    const d = await h.start('virtstoraged');
    expect(JSON.parse((await virtq('pool-list', '--json')).stdout)).toEqual({ pools: [expect.objectContaining({ name: 'default', state: 'active', autostart: true, path: h.root.path('lib', 'images') })] });
    mkdirSync(h.root.path('extra'));
    writeFileSync(h.root.path('extra.json'), JSON.stringify({ name: 'extra', type: 'dir', path: './extra' }));
    expect((await virtq('pool-define', h.root.path('extra.json'))).stdout).toBe('Pool extra defined\n');
    expect((await virtq('pool-start', 'extra')).code).toBe(0);
    expect((await virtq('vol-create-as', 'extra', 'disk.qcow2', '64MiB', '--format', 'qcow2')).stdout).toBe('Vol disk.qcow2 created (64.00 MiB, qcow2)\n');
    const payload = randomBytes(3 * MiB);
    writeFileSync(h.root.path('in.bin'), payload);
    expect((await virtq('vol-create-as', 'extra', 'data.raw', '4M')).code).toBe(0);
    expect((await virtq('vol-upload', 'extra', 'data.raw', h.root.path('in.bin'))).stdout).toContain('uploaded');
    expect((await virtq('vol-download', 'extra', 'data.raw', h.root.path('out.bin'))).code).toBe(0);
    expect(Buffer.compare(payload, (await import('node:fs')).readFileSync(h.root.path('out.bin')))).toBe(0);
    const clone = await virtq('--json', 'vol-clone', 'extra', 'data.raw', 'copy.raw');
    const lines = clone.stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines.at(-2)).toMatchObject({ event: 'progress', doneBytes: 3 * MiB, totalBytes: 3 * MiB });
    expect(lines.at(-1)).toMatchObject({ name: 'copy.raw', format: 'raw' });
    expect(await virtq('vol-resize', 'extra', 'copy.raw', '1M')).toMatchObject({ code: 1, stderr: expect.stringContaining('INVALID_ARG') });
    expect(await virtq('vol-delete', 'extra', 'nope.raw')).toMatchObject({ code: 1, stderr: 'virtq: NO_STORAGE_VOL: volume "nope.raw" in pool "extra" does not exist\n' });

    // The read-only socket lists and refuses changes.
    const ro = await connectStorage(h.uri('storage', true));
    expect((await ro.api.listVolumes({ pool: 'extra' })).volumes.map((v) => v.name)).toEqual(['copy.raw', 'data.raw', 'disk.qcow2']);
    await expect(ro.api.deleteVolume({ pool: 'extra', name: 'copy.raw' })).rejects.toMatchObject({ code: 'PERMISSION_DENIED' });
    ro.close();

    await h.kill(d);
    await h.start('virtstoraged');
    const rows = JSON.parse((await virtq('pool-list', '--json')).stdout) as { pools: Array<{ name: string; state: string }> };
    expect(rows.pools.map((p) => [p.name, p.state])).toEqual([['default', 'active'], ['extra', 'active']]);
    expect((await virtq('pool-destroy', 'extra')).code).toBe(0);
    expect(await virtq('vol-list', 'extra')).toMatchObject({ code: 1, stderr: expect.stringContaining('NO_STORAGE_POOL') });
    expect((await virtq('pool-undefine', 'extra')).code).toBe(0);
    expect(readdirSync(h.root.path('extra')).sort()).toEqual(['copy.raw', 'data.raw', 'disk.qcow2']);
  });

  it('leaves no half volume after a kill -9 in the middle of a clone, and reports clone progress', async () => {
    const d = await h.start('virtstoraged');
    const storage = await connectStorage(h.uri('storage'));
    await storage.api.createVolume({ pool: 'default', name: 'big.raw', capacity: 256 * MiB });
    await storage.upload('default', 'big.raw', (async function* () { for (let i = 0; i < 256; i++) yield randomBytes(MiB); })(), 256 * MiB);
    const seen: JobProgress[] = [];
    const done = storage.cloneVolume({ pool: 'default', source: 'big.raw', name: 'half.raw' }, { onProgress: (p) => seen.push(p) }).then(() => undefined, (e: unknown) => e);
    await expect.poll(() => seen.length, { timeout: 30_000, interval: 5 }).toBeGreaterThan(0);
    await h.kill(d);
    expect(await done).toMatchObject({ code: 'CONNECTION_CLOSED' });
    storage.close();
    await h.start('virtstoraged');
    const again = await connectStorage(h.uri('storage'));
    expect((await again.api.listVolumes({ pool: 'default' })).volumes.map((v) => v.name)).toEqual(['big.raw']);
    expect(readdirSync(h.root.path('lib', 'images'))).toEqual(['big.raw']);
    // And a clone that runs to the end reports its whole size.
    const last: JobProgress[] = [];
    await again.cloneVolume({ pool: 'default', source: 'big.raw', name: 'full.raw' }, { onProgress: (p) => last.push(p) });
    expect(last.at(-1)).toMatchObject({ operation: 'clone', doneBytes: 256 * MiB, totalBytes: 256 * MiB });
    again.close();
  });

  // Found by the hostile-input review: a guest owns every byte of a raw disk and can write a qcow2
  // header naming a host file as its backing image; a format guessed from the bytes would open it.
  it('never takes a guest-written qcow2 header for the format of a raw volume it made', async () => {
    await h.start('virtstoraged');
    const storage = await connectStorage(h.uri('storage'));
    await storage.api.createVolume({ pool: 'default', name: 'guest.raw', capacity: MiB });
    const evil = h.root.path('evil.qcow2');
    await run('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', '/etc/hostname', '-F', 'raw', evil, '1M']);
    const bytes = (await import('node:fs')).readFileSync(evil);
    await storage.upload('default', 'guest.raw', (async function* () { yield bytes; })(), bytes.length);
    expect(await storage.api.getVolume({ pool: 'default', name: 'guest.raw' })).toMatchObject({ format: 'raw', backingChain: [] });
    expect(await storage.api.getVolume({ pool: 'default', name: 'guest.raw' })).not.toHaveProperty('formatProbed');
    const copy = await storage.cloneVolume({ pool: 'default', source: 'guest.raw', name: 'copy.raw' });
    expect(copy).toMatchObject({ format: 'raw', backingChain: [] });
    expect(Buffer.compare((await import('node:fs')).readFileSync(copy.path).subarray(0, bytes.length), bytes)).toBe(0);
    // A file put in the pool by hand is listed with qemu-img's guess, marked as one.
    (await import('node:fs')).copyFileSync(evil, h.root.path('lib', 'images', 'byhand.qcow2'));
    expect(await storage.api.getVolume({ pool: 'default', name: 'byhand.qcow2' })).toMatchObject({ format: 'qcow2', formatProbed: true });
    storage.close();
  });

  it('serves its metrics on its own --http and through virtqemud\'s host scrape', async () => {
    // One sample with these labels (in any order) and a value matching `value`.
    const sample = (name: string, labels: Record<string, string>, value: string): RegExp =>
      new RegExp(`^${name}\\{${Object.entries(labels).map(([k, v]) => `(?=[^}]*${k}="${v}")`).join('')}[^}]*\\} ${value}$`, 'm');
    const storaged = await h.start('virtstoraged', ['--http', '127.0.0.1:0']);
    await h.start('virtsecretd');
    const qemud = await h.start('virtqemud', ['--http', '127.0.0.1:0', '--metrics-refresh-ms', '100']);
    const storage = await connectStorage(h.uri('storage'));
    await storage.api.createVolume({ pool: 'default', name: 'm.raw', capacity: MiB });
    storage.close();
    const own = await (await fetch(`http://127.0.0.1:${storaged.reply.httpPort}/metrics`)).text();
    expect(own).toMatch(sample('virtq_storage_pool_volumes', { daemon: 'virtstoraged', pool: 'default' }, '1'));
    expect(own).toMatch(sample('virtq_storage_operations_total', { daemon: 'virtstoraged', operation: 'create', code: 'OK' }, '1'));
    expect(own).toMatch(sample('virtq_storage_pool_capacity_bytes', { daemon: 'virtstoraged', pool: 'default' }, '[1-9][0-9]*'));
    // virtqemud serves what it last fetched from the side daemons (every 100 ms here): poll until it has the volume.
    await expect.poll(async () => (await (await fetch(`http://127.0.0.1:${qemud.reply.httpPort}/metrics`)).text()), { timeout: 10_000 })
      .toMatch(sample('virtq_storage_pool_volumes', { daemon: 'virtstoraged', pool: 'default' }, '1'));
    const host = await (await fetch(`http://127.0.0.1:${qemud.reply.httpPort}/metrics`)).text();
    expect(host).toMatch(sample('virtq_secret_secrets', { daemon: 'virtsecretd', ephemeral: 'false' }, '0'));
    expect(host.match(/^# TYPE virtq_rpc_requests_total counter$/gm)).toHaveLength(1);
  });
});
