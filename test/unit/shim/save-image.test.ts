// A save over an existing image (issue 16, session 15): the old image keeps a second name until the
// new one is renamed into place, so the rename frees nothing and the old blocks go after the
// reply (removeSuperseded); a failed save leaves the old image at its path and no stray name.
// QEMU is a fake monitor that streams bytes into the shim's socket as `migrate` asks.
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { systemClock } from '../../../protocol/index.js';
import type { HypervisorMonitor } from '../../../drivers/hypervisor/types.js';
import { readSaveImage } from '../../../drivers/hypervisor/qemu/save-image-header.js';
import { removeSuperseded, saveToFile } from '../../../shim/vm/save-image.js';

const STREAM = Buffer.alloc(2 * 2 ** 20 + 5, 0x5a);

// Answers the save's QMP commands; `migrate` connects to the unix socket and writes STREAM
// (or fails the migration when `fail`), and query-migrate says completed once it is written.
function fakeMonitor(fail = false): HypervisorMonitor {
  let status = 'active';
  const raw = async (cmd: object): Promise<unknown> => {
    const c = cmd as { execute: string; arguments?: { uri?: string } };
    if (c.execute === 'migrate') {
      const path = String(c.arguments?.uri).replace(/^unix:/, '');
      if (fail) { status = 'failed'; return {}; }
      const s = connect(path, () => s.end(STREAM, () => { status = 'completed'; }));
      return {};
    }
    if (c.execute === 'query-migrate') return { status, ram: { transferred: status === 'completed' ? STREAM.length : 0, remaining: 0, total: STREAM.length }, ...(status === 'failed' ? { 'error-desc': 'fake failure' } : {}) };
    return {};
  };
  return { raw } as unknown as HypervisorMonitor;
}

const meta = { definition: { name: 'v1', uuid: '11111111-2222-3333-4444-555555555555' }, running: true, savedAt: 1 };

describe('saveToFile over an existing image', () => {
  let dir: string;
  beforeEach(() => { dir = mkdtempSync(join(tmpdir(), 'vq-save-')); });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('replaces it, keeping the old one under a hidden name until removeSuperseded frees it', async () => {
    const file = join(dir, 'v1.save');
    writeFileSync(file, 'OLD IMAGE');
    const r = await saveToFile({ mon: fakeMonitor(), clock: systemClock(), file, meta, socket: join(dir, 's.sock') });
    const image = await readSaveImage(file);
    expect(statSync(file).size).toBe(r.bytes);
    expect(image.payloadBytes).toBe(STREAM.length);
    expect(r.superseded).toBeDefined();
    expect(readFileSync(r.superseded ?? '', 'utf8')).toBe('OLD IMAGE');
    const errors: unknown[] = [];
    removeSuperseded(r.superseded, (err) => errors.push(err));
    for (let i = 0; i < 200 && existsSync(r.superseded ?? ''); i++) await new Promise((res) => setTimeout(res, 5));
    expect(errors).toEqual([]);
    expect(readdirSync(dir).sort()).toEqual(['v1.save']);
  });

  it('names nothing superseded when the path was free', async () => {
    const file = join(dir, 'v1.save');
    const r = await saveToFile({ mon: fakeMonitor(), clock: systemClock(), file, meta, socket: join(dir, 's.sock') });
    expect(r.superseded).toBeUndefined();
    expect(readdirSync(dir).sort()).toEqual(['v1.save']);
  });

  it('leaves the old image in place, and no second name, when the save fails', async () => {
    const file = join(dir, 'v1.save');
    writeFileSync(file, 'OLD IMAGE');
    await expect(saveToFile({ mon: fakeMonitor(true), clock: systemClock(), file, meta, socket: join(dir, 's.sock') })).rejects.toMatchObject({ code: 'OPERATION_FAILED' });
    expect(readFileSync(file, 'utf8')).toBe('OLD IMAGE');
    expect(readdirSync(dir).sort()).toEqual(['v1.save']);
  });
});
