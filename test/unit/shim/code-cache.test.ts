// The shim's body run through V8's code cache (shim/code-cache.ts): which file is read, what a
// refused cache costs (nothing: the body runs), and when a shim writes one. That a cache written
// by one shim is taken by the next process is test/integration/shim-code-cache.test.ts.
import { afterEach, describe, expect, it } from 'vitest';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { codeCacheFile, runBody, shimCodeCache } from '../../../shim/code-cache.js';
import { tmpRoot, type TmpRoot } from '../../helpers/tmp-root.js';

const SHA = 'ab'.repeat(32);
const runs = (): number => (globalThis as { __codeCacheTestRuns?: number }).__codeCacheTestRuns ?? 0;

describe('shim code cache', () => {
  let root: TmpRoot | undefined;
  afterEach(() => root?.remove());

  /** A CommonJS body that counts its runs; unique per test, so V8's in-process cache of one test's source is not another's. */
  function body(): string {
    const made = tmpRoot('vq-cc-');
    root = made;
    const path = made.path('body.cjs');
    writeFileSync(path, `// ${randomUUID()}\nglobalThis.__codeCacheTestRuns = (globalThis.__codeCacheTestRuns ?? 0) + 1;\nmodule.exports.dir = __dirname; function later() { return require('node:path').sep; } module.exports.later = later;`);
    return path;
  }

  it('names a cache by body, node and start kind', () => {
    expect(codeCacheFile('/r/lib/cache', SHA, 'start', 'v20.20.2', 'x64')).toBe(`/r/lib/cache/virtq-shim-${'ab'.repeat(8)}-v20.20.2-x64-start.v8`);
    expect(codeCacheFile('/c', SHA, 'incoming', 'v22.1.0', 'arm64')).toBe(`/c/virtq-shim-${'ab'.repeat(8)}-v22.1.0-arm64-incoming.v8`);
  });

  it('runs the body without a cache dir and writes nothing', () => {
    const path = body();
    const before = runs();
    const cache = runBody({ bodyPath: path, bodySha: SHA, cacheDir: undefined });
    expect(runs()).toBe(before + 1);
    expect(cache).toMatchObject({ state: 'none', kind: undefined });
    expect(shimCodeCache()).toBe(cache);
    expect(cache.save('start')).toBe(false);
    expect(readdirSync(dirname(path))).toEqual(['body.cjs']);
  });

  it('writes the cache once the dir exists or can be made, 0600, with no temp file left', () => {
    const path = body();
    const dir = join(dirname(path), 'lib', 'cache');
    const cache = runBody({ bodyPath: path, bodySha: SHA, cacheDir: dir });
    expect(cache.state).toBe('none');
    expect(cache.save('start')).toBe(true);
    const file = codeCacheFile(dir, SHA, 'start');
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(statSync(file).size).toBeGreaterThan(0);
    expect(readdirSync(dir)).toEqual([file.slice(dir.length + 1)]);
  });

  it("removes another body's or node's cache of the same kind when it writes one", () => {
    const path = body();
    const dir = join(dirname(path), 'cache');
    const old = [codeCacheFile(dir, 'cd'.repeat(32), 'start'), codeCacheFile(dir, SHA, 'start', 'v20.1.0')];
    const otherKind = codeCacheFile(dir, 'cd'.repeat(32), 'incoming');
    const cache = runBody({ bodyPath: path, bodySha: SHA, cacheDir: dir });
    mkdirSync(dir);
    for (const f of [...old, otherKind, join(dir, 'qemu-caps-x.json')]) writeFileSync(f, 'x');
    expect(cache.save('start')).toBe(true);
    expect(readdirSync(dir).sort()).toEqual([codeCacheFile(dir, SHA, 'start'), otherKind, join(dir, 'qemu-caps-x.json')].map((f) => f.slice(dir.length + 1)).sort());
  });

  it('runs the body when V8 refuses the cache, reads incoming before start, and replaces what it refused', () => {
    const path = body();
    const dir = join(dirname(path), 'cache');
    mkdirSync(dir);
    // The body's first compile in this process: V8's own in-memory cache of a source compiled
    // before would answer first and never look at the file.
    const garbage = Buffer.alloc(4096, 0x5a);
    writeFileSync(codeCacheFile(dir, SHA, 'start'), Buffer.alloc(2048, 0x33));
    writeFileSync(codeCacheFile(dir, SHA, 'incoming'), garbage);
    const before = runs();
    const cache = runBody({ bodyPath: path, bodySha: SHA, cacheDir: dir });
    expect(runs()).toBe(before + 1);
    expect(cache).toMatchObject({ state: 'rejected', kind: 'incoming' });
    expect(cache.save('incoming')).toBe(true);
    expect(readFileSync(codeCacheFile(dir, SHA, 'incoming')).equals(garbage)).toBe(false);
  });

  // In one process V8 answers a second compile of the same source from memory (a cache in a file is
  // then "accepted" unread): this checks what a shim writes after each outcome; that another process
  // takes the file is the integration test's.
  it('keeps a taken cache that covers the start, and adds an incoming one after a migration', () => {
    const path = body();
    const dir = join(dirname(path), 'cache');
    runBody({ bodyPath: path, bodySha: SHA, cacheDir: dir }).save('start');
    const start = runBody({ bodyPath: path, bodySha: SHA, cacheDir: dir });
    expect(start).toMatchObject({ state: 'accepted', kind: 'start' });
    expect(start.save('start')).toBe(false);
    expect(existsSync(codeCacheFile(dir, SHA, 'incoming'))).toBe(false);
    expect(start.save('incoming')).toBe(true);
    const incoming = runBody({ bodyPath: path, bodySha: SHA, cacheDir: dir });
    expect(incoming).toMatchObject({ state: 'accepted', kind: 'incoming' });
    expect(incoming.save('start')).toBe(false);
    expect(incoming.save('incoming')).toBe(false);
  });
});
