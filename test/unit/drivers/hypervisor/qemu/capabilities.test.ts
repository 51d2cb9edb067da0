// Capability probing against the real QEMU binary (fast: no guest), the on-disk cache (a hit
// never spawns), the probe's failure paths with a scripted fake process, and the accel choice.
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { VirtqError } from '../../../../../protocol/errors.js';
import {
  accelEnvironment, cachedCapabilities, chooseAccel, kvmUsable, probeCapabilities, resolveBinary, resolveBinarySync, resolveMachine, type AccelEnvironment,
} from '../../../../../drivers/hypervisor/qemu/capabilities.js';
import { spawnProbe, type ProbeExit, type ProbeProcess, type ProbeSpawn } from '../../../../../drivers/hypervisor/qemu/capabilities-probe.js';
import { FakeClock } from '../../../../helpers/fake-clock.js';

const QEMU = '/usr/bin/qemu-system-x86_64';
let dir = '';

beforeEach(() => { dir = mkdtempSync(join(tmpdir(), 'virtq-caps-')); });
afterEach(() => { rmSync(dir, { recursive: true, force: true }); });

/** Wraps the real spawn and counts how often it ran. */
function countingSpawn(): { spawn: ProbeSpawn; calls: string[][] } {
  const calls: string[][] = [];
  return { calls, spawn: (binary, args) => { calls.push([...args]); return spawnProbe(binary, args); } };
}

/** A wrapper script around the real QEMU: a binary whose mtime the test may change. */
function wrapperBinary(): string {
  const path = join(dir, 'qemu-wrapper');
  writeFileSync(path, `#!/bin/sh\nexec ${QEMU} "$@"\n`);
  chmodSync(path, 0o755);
  return path;
}

/** A fake probe process that answers each QMP line with `answer(command)`, and exits on quit unless told to hang. */
function fakeSpawn(answer: (command: string) => object | undefined, hang = false): { spawn: ProbeSpawn; killed: () => boolean; started: Promise<void> } {
  let killed = false;
  let markStarted: () => void = () => {};
  const started = new Promise<void>((resolve) => { markStarted = resolve; });
  const spawn: ProbeSpawn = () => {
    markStarted();
    const stdin = new PassThrough();
    const stdout = new PassThrough();
    const stderr = new PassThrough();
    let exit: (e: ProbeExit) => void = () => {};
    const exited = new Promise<ProbeExit>((resolve) => { exit = resolve; });
    stdin.setEncoding('utf8');
    stdin.on('data', (chunk: string) => {
      for (const line of chunk.split('\n').filter((l) => l !== '')) {
        const { execute, id } = JSON.parse(line) as { execute: string; id: string };
        const reply = answer(execute);
        if (reply !== undefined) stdout.write(`${JSON.stringify({ ...reply, id })}\n`);
        if (execute === 'quit' && !hang) { stdout.end(); exit({ code: 0, signal: null }); }
      }
    });
    const proc: ProbeProcess = { stdin, stdout, stderr, exited, kill: () => { killed = true; exit({ code: null, signal: 'SIGKILL' }); } };
    return proc;
  };
  return { spawn, killed: () => killed, started };
}

describe('probeCapabilities', () => {
  it('probes the real binary: version, machines, commands, sandbox and KVM', async () => {
    const caps = await probeCapabilities(QEMU, { cacheDir: dir });
    expect(caps.version).toMatchObject({ major: 7, minor: 2 });
    expect(resolveMachine(caps, 'pc')).toMatch(/^pc-i440fx-/);
    expect(resolveMachine(caps, 'q35')).toMatch(/^pc-q35-/);
    expect(resolveMachine(caps, 'no-such-machine')).toBeUndefined();
    expect(caps.commands).toEqual(expect.arrayContaining(['blockdev-add', 'device_add', 'query-block', 'cont', 'quit']));
    expect(caps.sandbox).toBe(true);
    expect(caps.kvm).toBe(kvmUsable());
  });

  it('reads an unchanged binary from the cache without spawning it', async () => {
    const first = countingSpawn();
    const caps = await probeCapabilities(QEMU, { cacheDir: dir, spawn: first.spawn });
    expect(first.calls).toHaveLength(1);
    const second = countingSpawn();
    expect(await probeCapabilities(QEMU, { cacheDir: dir, spawn: second.spawn })).toEqual(caps);
    expect(second.calls).toHaveLength(0);
  });

  it('writes the cache atomically: one complete JSON file, no temp files left behind', async () => {
    const caps = await probeCapabilities(QEMU, { cacheDir: join(dir, 'new', 'cache') });
    expect(readdirSync(join(dir, 'new', 'cache'))).toEqual([`qemu-caps-${caps.key}.json`]);
  });

  // Chaos seed 28001: on a full disk the cache's write failed the VM's start.
  it('returns what it probed when the cache cannot be written, and says so', async () => {
    writeFileSync(join(dir, 'file'), '');
    const counter = countingSpawn();
    const notWritten: VirtqError[] = [];
    const opts = { cacheDir: join(dir, 'file', 'cache'), spawn: counter.spawn, kvmCheck: () => false, onCacheNotWritten: (e: VirtqError) => notWritten.push(e) };
    const caps = await probeCapabilities(QEMU, opts);
    expect(caps.version.major).toBeGreaterThan(0);
    expect(notWritten.map((e) => e.message)).toEqual([expect.stringMatching(/ENOTDIR/)]);
    await probeCapabilities(QEMU, opts);
    expect(counter.calls).toHaveLength(2); // nothing cached: probed again
  });

  it('probes again when the binary changes (mtime) and when KVM usability changes', async () => {
    const binary = wrapperBinary();
    const counter = countingSpawn();
    const opts = { cacheDir: join(dir, 'cache'), spawn: counter.spawn, kvmCheck: () => false };
    const a = await probeCapabilities(binary, opts);
    expect(a.kvm).toBe(false);
    expect(counter.calls[0]).not.toContain('kvm');
    await probeCapabilities(binary, opts);
    expect(counter.calls).toHaveLength(1);
    utimesSync(binary, new Date(1_600_000_000_000), new Date(1_600_000_000_000));
    const b = await probeCapabilities(binary, opts);
    expect(counter.calls).toHaveLength(2);
    expect(b.key).not.toBe(a.key);
    if (kvmUsable()) {
      const c = await probeCapabilities(binary, { ...opts, kvmCheck: () => true });
      expect(counter.calls).toHaveLength(3);
      expect(c.kvm).toBe(true);
    }
  });

  it('cachedCapabilities: the cache hit without waiting, nothing before the first probe or after the binary changed', async () => {
    const binary = wrapperBinary();
    const cacheDir = join(dir, 'cache');
    expect(cachedCapabilities(binary, cacheDir, false)).toBeUndefined();
    const caps = await probeCapabilities(binary, { cacheDir, kvmCheck: () => false });
    expect(cachedCapabilities(binary, cacheDir, false)).toEqual(caps);
    expect(cachedCapabilities(binary, cacheDir, true)).toBeUndefined(); // KVM usability is part of the key
    utimesSync(binary, new Date(1_600_000_000_000), new Date(1_600_000_000_000));
    expect(cachedCapabilities(binary, cacheDir, false)).toBeUndefined();
    expect(() => cachedCapabilities(join(dir, 'missing'), cacheDir, false)).toThrow(/not found/);
  });

  it('returns `known` capabilities (a warm pool shim\'s) only while the binary is the one they were read for', async () => {
    const binary = wrapperBinary();
    const cacheDir = join(dir, 'cache');
    const probed = await probeCapabilities(binary, { cacheDir, kvmCheck: () => false });
    const known = { ...probed, probedAt: -1 }; // told apart from the cache file's copy
    const counter = countingSpawn();
    const opts = { cacheDir, spawn: counter.spawn, kvmCheck: () => false };
    expect(await probeCapabilities(binary, { ...opts, known })).toBe(known);
    rmSync(cacheDir, { recursive: true }); // no cache file needed while the key holds
    expect(await probeCapabilities(binary, { ...opts, known })).toBe(known);
    expect(counter.calls).toHaveLength(0);
    // The binary replaced while the shim waited: its identity changed, so the binary is probed again.
    utimesSync(binary, new Date(1_600_000_000_000), new Date(1_600_000_000_000));
    const fresh = await probeCapabilities(binary, { ...opts, known });
    expect(counter.calls).toHaveLength(1);
    expect(fresh.key).not.toBe(known.key);
    expect(fresh.probedAt).not.toBe(-1);
  });

  it('probes again over a corrupt cache file', async () => {
    const caps = await probeCapabilities(QEMU, { cacheDir: dir });
    writeFileSync(join(dir, `qemu-caps-${caps.key}.json`), '{"format": 1, "key"');
    const counter = countingSpawn();
    expect((await probeCapabilities(QEMU, { cacheDir: dir, spawn: counter.spawn })).version).toEqual(caps.version);
    expect(counter.calls).toHaveLength(1);
  });

  it('fails with TIMEOUT and kills QEMU when it never answers', async () => {
    const clock = new FakeClock();
    const fake = fakeSpawn(() => undefined, true);
    const result = probeCapabilities(QEMU, { cacheDir: dir, clock, spawn: fake.spawn, timeoutMs: 5000 });
    const settled = result.catch((err: unknown) => err);
    await fake.started; // the cache lookup before the spawn is real file I/O
    await clock.advance(4999);
    expect(fake.killed()).toBe(false);
    await clock.advance(1);
    const err = await settled;
    expect(err).toBeInstanceOf(VirtqError);
    expect((err as VirtqError).code).toBe('TIMEOUT');
    expect(fake.killed()).toBe(true);
  });

  it('fails with OPERATION_FAILED naming the QMP error class', async () => {
    const fake = fakeSpawn((c) => (c === 'query-kvm' ? { error: { class: 'CommandNotFound', desc: 'nope' } } : { return: [] }));
    await expect(probeCapabilities(QEMU, { cacheDir: dir, spawn: fake.spawn })).rejects.toThrow(/query-kvm: CommandNotFound: nope/);
  });

  it('fails with OPERATION_FAILED and QEMU\'s stderr when the binary exits early', async () => {
    const path = join(dir, 'broken-qemu');
    writeFileSync(path, '#!/bin/sh\necho "qemu: something is wrong" >&2\nexit 1\n');
    chmodSync(path, 0o755);
    await expect(probeCapabilities(path, { cacheDir: dir })).rejects.toMatchObject({ code: 'OPERATION_FAILED', message: expect.stringMatching(/something is wrong/) });
    await expect(probeCapabilities(join(dir, 'missing'), { cacheDir: dir })).rejects.toMatchObject({ code: 'OPERATION_FAILED', message: expect.stringMatching(/not found/) });
  });
});

describe('chooseAccel', () => {
  const caps = { kvm: true, binary: QEMU };
  const usable: AccelEnvironment = { kvmUsable: true };
  const unusable: AccelEnvironment = { kvmUsable: false };

  it('takes the definition\'s accel when given', () => {
    expect(chooseAccel({ name: 'a', accel: 'tcg' }, caps, usable)).toBe('tcg');
    expect(chooseAccel({ name: 'a', accel: 'kvm' }, caps, usable)).toBe('kvm');
  });

  it('refuses kvm with NOT_SUPPORTED and the reason when KVM is unusable', () => {
    expect(() => chooseAccel({ name: 'a', accel: 'kvm' }, caps, unusable)).toThrow(/asks for accel kvm.*\/dev\/kvm cannot be opened/);
    expect(() => chooseAccel({ name: 'a', accel: 'kvm' }, { ...caps, kvm: false }, usable)).toThrow(/could not initialise KVM/);
    try { chooseAccel({ name: 'a', accel: 'kvm' }, caps, unusable); } catch (err) { expect((err as VirtqError).code).toBe('NOT_SUPPORTED'); }
  });

  it('defaults to KVM when usable, else TCG, unless the environment asks for TCG', () => {
    expect(chooseAccel({ name: 'a' }, caps, usable)).toBe('kvm');
    expect(chooseAccel({ name: 'a' }, caps, unusable)).toBe('tcg');
    expect(chooseAccel({ name: 'a' }, { ...caps, kvm: false }, usable)).toBe('tcg');
    expect(chooseAccel({ name: 'a' }, caps, { kvmUsable: true, defaultAccel: 'tcg' })).toBe('tcg');
    expect(chooseAccel({ name: 'a' }, caps, { kvmUsable: false, defaultAccel: 'kvm' })).toBe('tcg');
  });
});

describe('accelEnvironment, kvmUsable, resolveBinary', () => {
  it('reads VIRTQ_DEFAULT_ACCEL and refuses other values', () => {
    expect(accelEnvironment({}, () => true)).toEqual({ kvmUsable: true });
    expect(accelEnvironment({ VIRTQ_DEFAULT_ACCEL: 'tcg' }, () => true)).toEqual({ kvmUsable: true, defaultAccel: 'tcg' });
    expect(() => accelEnvironment({ VIRTQ_DEFAULT_ACCEL: 'hvf' }, () => true)).toThrow(/must be kvm or tcg/);
  });

  it('reports whether a device opens read-write', () => {
    expect(kvmUsable(join(dir, 'no-such-device'))).toBe(false);
    writeFileSync(join(dir, 'rw'), '');
    expect(kvmUsable(join(dir, 'rw'))).toBe(true);
  });

  it('finds a binary on a search path', async () => {
    expect(await resolveBinary('qemu-system-x86_64', `${dir}:/usr/bin`)).toBe(QEMU);
    expect(resolveBinarySync('qemu-system-x86_64', `${dir}:/usr/bin`)).toBe(QEMU);
    expect(() => resolveBinarySync('qemu-system-nope', '/usr/bin')).toThrow(/not found on the search path/);
    await expect(resolveBinary('qemu-system-nope', '/usr/bin')).rejects.toThrow(/not found on the search path/);
  });

  it('takes the first executable in search-path order, though all directories are checked at once', async () => {
    const [a, b, c] = ['a', 'b', 'c'].map((d) => join(dir, `path-${d}`)) as [string, string, string];
    for (const d of [a, b, c]) mkdirSync(d);
    writeFileSync(join(a, 'qemu-fake'), '', { mode: 0o644 }); // not executable: skipped
    for (const d of [b, c]) writeFileSync(join(d, 'qemu-fake'), '', { mode: 0o755 });
    expect(await resolveBinary('qemu-fake', `${a}:${b}:${c}`)).toBe(join(b, 'qemu-fake'));
    expect(await resolveBinary('qemu-fake', `${c}::${a}:${b}`)).toBe(join(c, 'qemu-fake'));
    expect(await resolveBinary('qemu-fake', `${join(dir, 'missing')}:${a}`).catch((e: Error) => e.message)).toMatch(/not found on the search path/);
  });
});
