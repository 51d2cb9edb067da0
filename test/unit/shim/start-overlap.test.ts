import fs from 'node:fs';
import { getHeapStatistics } from 'node:v8';
import { describe, expect, it, vi } from 'vitest';
import { VirtqError, normalizeDefinition, pathsOnly, systemClock } from '../../../protocol/index.js';
import { allDone } from '../../../shim/shim-parts.js';
import { LineLogHub } from '../../../daemon/line-log.js';
import { collectBeforeIdle, rehearse, rehearseService, warmCapabilities, warmUp } from '../../../shim/warm-up.js';
import { rehearseVm } from '../../../shim/warm-up-vm.js';
import { rehearseHost } from '../../../shim/warm-up-host.js';
import { probeCapabilities } from '../../../drivers/hypervisor/qemu/capabilities.js';
import { tmpRoot } from '../../helpers/tmp-root.js';
import { deferred } from '../../helpers/promises.js';

describe('allDone', () => {
  it('settles only after every step, then rethrows the first failure', async () => {
    const bind = deferred();
    let bound = false;
    const refused = Promise.reject(new VirtqError('NAME_IN_USE', 'taken'));
    const waiting = allDone([refused, bind.promise.then(() => { bound = true; }), undefined]);
    let settled = false;
    void waiting.catch(() => undefined).finally(() => { settled = true; });
    await new Promise((r) => setImmediate(r));
    // The refusal came first, but a bind still running must finish before the failure is handled.
    expect(settled).toBe(false);
    bind.resolve();
    await expect(waiting).rejects.toMatchObject({ code: 'NAME_IN_USE' });
    expect(bound).toBe(true);
  });

  it('resolves when every step succeeds or is absent', async () => {
    await expect(allDone([Promise.resolve(1), undefined])).resolves.toBeUndefined();
  });
});

describe('warmUp', () => {
  it('writes nothing to stdout or stderr (a warm shim holds and says nothing before its definition)', () => {
    const out = vi.spyOn(process.stdout, 'write');
    const err = vi.spyOn(process.stderr, 'write');
    // pino's destinations write with fs.writeSync, not through process.stderr.
    const sync = vi.spyOn(fs, 'writeSync');
    // The rehearsal's made-up VM names paths: none of them, nor anything else, is opened or made.
    const opened = vi.spyOn(fs, 'openSync');
    const made = vi.spyOn(fs, 'mkdirSync');
    const stat = vi.spyOn(fs, 'statSync');
    try {
      warmUp(systemClock());
      expect(out).not.toHaveBeenCalled();
      expect(err).not.toHaveBeenCalled();
      expect(sync).not.toHaveBeenCalled();
      expect(opened).not.toHaveBeenCalled();
      expect(made).not.toHaveBeenCalled();
      expect(stat).not.toHaveBeenCalled();
    } finally {
      for (const spy of [out, err, sync, opened, made, stat]) spy.mockRestore();
    }
  });

  it('runs its rehearsal through: a start request, definition and argv the current schemas accept', () => {
    expect(() => rehearse(systemClock())).not.toThrow();
  });

  it('builds the VM\'s service and metrics through (their first-time code runs before the hand-off)', () => {
    const logs = new LineLogHub({ name: 'virtq-shim', bindings: {}, filters: 'silent' });
    const service = rehearseService(systemClock(), logs);
    expect(service.server.limits.workerConcurrency).toBeGreaterThan(0);
  });
});

describe('rehearseHost', () => {
  it('runs through on this host: the built-in lock plugin passes its check, the cgroup and /proc reads answer', () => {
    const writes = vi.spyOn(fs, 'writeFileSync');
    const made = vi.spyOn(fs, 'mkdirSync');
    try {
      expect(() => rehearseHost()).not.toThrow();
      expect(writes).not.toHaveBeenCalled();
      expect(made).not.toHaveBeenCalled();
    } finally {
      writes.mockRestore();
      made.mockRestore();
    }
  });
});

describe('warmCapabilities', () => {
  it('reads the root\'s capability cache before the definition: nothing before the first probe, the cached record after', async () => {
    const root = tmpRoot();
    try {
      const layout = { state: root.path('lib') };
      expect(warmCapabilities(layout, 'qemu-system-x86_64', '/usr/bin')).toBeUndefined();
      expect(warmCapabilities(layout, 'qemu-system-nope', '/usr/bin')).toBeUndefined(); // no binary: the start says why
      const caps = await probeCapabilities('/usr/bin/qemu-system-x86_64', { cacheDir: root.path('lib/cache') });
      expect(warmCapabilities(layout, 'qemu-system-x86_64', '/usr/bin')).toEqual(caps);
    } finally {
      root.remove();
    }
  });
});

describe('rehearseVm', () => {
  it('builds the VM\'s objects and handler tables through (the rehearsal VM\'s)', () => {
    const logs = new LineLogHub({ name: 'virtq-shim', bindings: {}, filters: 'silent' });
    const def = pathsOnly(normalizeDefinition({ name: 'r1', memoryMiB: 64, vcpus: 1, kernel: { path: '/nonexistent/k' } }, () => '00000000-0000-4000-8000-000000000000'));
    const names = rehearseVm(systemClock(), logs, def);
    expect(names).toEqual(expect.arrayContaining(['getState', 'getInfo', 'save', 'migrate']));
  });
});

describe('collectBeforeIdle', () => {
  it('collects the garbage loading left, and leaves no gc() in the shim\'s own context', () => {
    let junk: { i: number }[] | undefined = [];
    for (let i = 0; i < 200_000; i++) junk.push({ i });
    junk = undefined;
    const before = getHeapStatistics().used_heap_size;
    collectBeforeIdle();
    // Synchronously, with no GC of its own, the used heap would not shrink by the garbage's ~6 MiB.
    expect(before - getHeapStatistics().used_heap_size).toBeGreaterThan(4 * 1024 * 1024);
    expect((globalThis as { gc?: unknown }).gc).toBeUndefined();
  });

  it('calls the global gc() when the shim was started with --expose-gc', () => {
    let calls = 0;
    collectBeforeIdle(() => { calls += 1; });
    expect(calls).toBe(1);
  });
});

