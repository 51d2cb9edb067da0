// The storage and secret commands against fakes: sizes as people write them, the daemon each
// command goes to, uploads and downloads over streams (with Ctrl-C), clone progress lines with
// --json, and secret values in and out as base64 or a file, never echoed.
import { describe, expect, it } from 'vitest';
import { EventQueue, VirtqError } from '../../../protocol/index.js';
import type { CliByteStream } from '../../../cli/io.js';
import { parseSize } from '../../../cli/sizes.js';
import { fake } from './fake-io.js';

const settle = async (): Promise<void> => { for (let i = 0; i < 50; i++) await Promise.resolve(); };

/** A stream whose server side the test plays: records what the CLI wrote, ends as told. */
class FakeStream implements CliByteStream {
  readonly written: Buffer[] = [];
  ended = false;
  writeEnded = false;
  error: { code: string; message: string } | undefined;
  private readonly incoming = new EventQueue<Uint8Array>(100);
  constructor(readonly opened: unknown = {}) {}
  write(data: Uint8Array): void { this.written.push(Buffer.from(data)); }
  async drain(): Promise<void> { /* always writable */ }
  endWrite(): void { this.writeEnded = true; }
  end(): void { this.ended = true; this.incoming.end(); }
  fail(err: { code: string; message: string }): void { this.error = err; this.ended = true; this.incoming.end(); }
  send(bytes: string): void { this.incoming.push(Buffer.from(bytes)); }
  finish(err?: { code: string; message: string }): void { this.error = err; this.incoming.end(); }
  [Symbol.asyncIterator](): AsyncIterator<Uint8Array> { return this.incoming[Symbol.asyncIterator](); }
}

describe('virtq storage commands', () => {
  it('parses sizes as virsh does', () => {
    expect(parseSize('4096')).toBe(4096);
    expect(parseSize('10G')).toBe(10 * 1024 ** 3);
    expect(parseSize('512MiB')).toBe(512 * 1024 ** 2);
    expect(parseSize('1.5GB')).toBe(1.5e9);
    expect(() => parseSize('ten')).toThrow(/not a size/);
  });

  it('sends a volume command to the storage daemon of the host the URI names', async () => {
    const f = fake({ service: { createVolume: (a: Record<string, unknown>) => ({ pool: a['pool'], name: a['name'], path: '/p/x', format: a['format'], capacity: a['capacity'], allocation: 0, encrypted: false, backingChain: [] }) } });
    expect(await f.run('-c', 'qemu:///system?root=/r', 'vol-create-as', 'default', 'x.qcow2', '1G', '--backing-vol', 'base.raw')).toBe(0);
    expect(f.uris).toEqual(['storage:storage:///system?root=/r']);
    expect(f.calls).toEqual([{ proc: 'createVolume', args: { pool: 'default', name: 'x.qcow2', capacity: 1024 ** 3, format: 'qcow2', backing: { pool: 'default', name: 'base.raw' } }, timeoutMs: undefined }]);
    expect(f.stdout.text).toBe('Vol x.qcow2 created (1.00 GiB, qcow2)\n');
    expect(await f.run('vol-create-as', 'default', 'y.raw', 'lots')).toBe(2);
  });

  it('uploads a file in order and reports the size once the daemon ends the stream', async () => {
    const stream = new FakeStream();
    const files = new Map([['img.bin', Buffer.from('0123456789abcdef')]]);
    const f = fake({ files, streams: { uploadVolume: () => stream } });
    const done = f.run('vol-upload', 'default', 'v.raw', 'img.bin');
    await settle();
    expect(f.calls).toEqual([{ proc: 'uploadVolume', args: { pool: 'default', name: 'v.raw', length: 16 } }]);
    expect(Buffer.concat(stream.written).toString()).toBe('0123456789abcdef');
    expect(stream.writeEnded).toBe(true);
    stream.finish();
    expect(await done).toBe(0);
    expect(f.stdout.text).toBe('Vol v.raw uploaded from img.bin (16 B)\n');
  });

  it('fails an upload the daemon refuses midway, and cancels one on Ctrl-C', async () => {
    const refused = new FakeStream();
    const files = new Map([['img.bin', Buffer.from('01234567')]]);
    const f = fake({ files, streams: { uploadVolume: () => refused } });
    const done = f.run('vol-upload', 'default', 'v.raw', 'img.bin');
    await settle();
    refused.finish({ code: 'NO_SPACE', message: 'no space left' });
    expect(await done).toBe(1);
    expect(f.stderr.text).toBe('virtq: NO_SPACE: no space left\n');

    const slow = new FakeStream();
    const g = fake({ files: new Map([['img.bin', Buffer.alloc(64)]]), streams: { uploadVolume: () => slow } });
    const cancelled = g.run('vol-upload', 'default', 'v.raw', 'img.bin');
    await settle();
    g.interrupt();
    await settle();
    slow.finish(slow.error);
    expect(await cancelled).toBe(1);
    expect(slow.error).toMatchObject({ code: 'OPERATION_ABORTED' });
  });

  it('writes a download only once complete, and not at all when it ends short', async () => {
    const stream = new FakeStream({ length: 6 });
    const f = fake({ streams: { downloadVolume: () => stream } });
    const done = f.run('vol-download', 'default', 'v.raw', 'out.bin');
    await settle();
    stream.send('abc');
    stream.send('def');
    stream.finish();
    expect(await done).toBe(0);
    expect(f.files.get('out.bin')?.toString()).toBe('abcdef');

    const short = new FakeStream({ length: 6 });
    const g = fake({ streams: { downloadVolume: () => short } });
    const failed = g.run('vol-download', 'default', 'v.raw', 'out.bin');
    await settle();
    short.send('abc');
    short.finish();
    expect(await failed).toBe(1);
    expect(g.files.has('out.bin')).toBe(false);
    expect(g.stderr.text).toContain('OPERATION_FAILED');
  });

  it('prints clone progress as JSON lines, then the result, and cancels the job on Ctrl-C', async () => {
    const events = new EventQueue<{ prog: string; name: string; body: unknown }>(10);
    let release!: (v: unknown) => void;
    const f = fake({
      serviceEvents: events,
      service: {
        cloneVolume: (a: Record<string, unknown>) => {
          events.push({ prog: 'storage', name: 'progress', body: { job: a['job'], operation: 'clone', pool: 'default', volume: 'b.raw', doneBytes: 5, totalBytes: 10 } });
          return new Promise((r) => { release = r; });
        },
        cancelJob: () => { release(Promise.reject(new VirtqError('OPERATION_ABORTED', 'cancelled'))); return {}; },
      },
    });
    const done = f.run('--json', 'vol-clone', 'default', 'a.raw', 'b.raw');
    await settle();
    expect(JSON.parse(f.stdout.text.split('\n')[0] ?? '')).toMatchObject({ event: 'progress', doneBytes: 5, totalBytes: 10 });
    f.interrupt();
    await settle();
    expect(await done).toBe(1);
    expect(f.calls.map((c) => c.proc)).toEqual(['cloneVolume', 'cancelJob']);
    expect(f.calls[0]?.timeoutMs).toBe(0);
    expect(f.stderr.text).toBe('virtq: OPERATION_ABORTED: cancelled\n');
  });
});

describe('virtq secret commands', () => {
  it('sets a value from base64 or a file, and prints values as base64', async () => {
    const files = new Map([['pass', Buffer.from([0xff, 0x00, 0x41])]]);
    const f = fake({ files, service: { setValue: {}, getValue: { value: Buffer.from('hunter2') } } });
    expect(await f.run('secret-set-value', '6f1c0c3e-8a5e-4a53-9d8e-0b1b4c1d2e3f', Buffer.from('hunter2').toString('base64'))).toBe(0);
    expect(await f.run('secret-set-value', '6f1c0c3e-8a5e-4a53-9d8e-0b1b4c1d2e3f', '--file', 'pass')).toBe(0);
    expect(f.calls.map((c) => Buffer.from((c.args as { value: Uint8Array }).value).toString('hex'))).toEqual([Buffer.from('hunter2').toString('hex'), 'ff0041']);
    expect(f.uris.every((u) => u.startsWith('secret:secret:///'))).toBe(true);
    expect(await f.run('secret-get-value', '6f1c0c3e-8a5e-4a53-9d8e-0b1b4c1d2e3f')).toBe(0);
    expect(f.stdout.text).toBe('Secret value set\nSecret value set\naHVudGVyMg==\n');
  });

  it('refuses a value that is neither base64 nor a file, without echoing it', async () => {
    const f = fake({ service: { setValue: {} } });
    expect(await f.run('secret-set-value', '6f1c0c3e-8a5e-4a53-9d8e-0b1b4c1d2e3f', 'not base64!')).toBe(1);
    expect(f.stderr.text).toBe('virtq: INVALID_ARG: the value is not valid base64 (use --file PATH for raw bytes)\n');
    expect(f.calls).toEqual([]);
  });

  it('builds a definition from flags', async () => {
    const f = fake({ service: { defineSecret: { uuid: '6f1c0c3e-8a5e-4a53-9d8e-0b1b4c1d2e3f', private: true, ephemeral: false, hasValue: false } } });
    expect(await f.run('secret-define', '--usage-volume', 'default/db.qcow2', '--private', '--description', 'db disk')).toBe(0);
    expect(f.calls[0]?.args).toEqual({ definition: { usage: { type: 'volume', volume: 'default/db.qcow2' }, description: 'db disk', private: true } });
    expect(f.stdout.text).toBe('Secret 6f1c0c3e-8a5e-4a53-9d8e-0b1b4c1d2e3f created\n');
  });
});
