// What a warm shim (docs/decisions/0026-warm-shim-pool.md) does while it waits for its definition:
// the one-time work of every start that depends on no VM, so the start after the hand-off does not
// pay for it. V8 compiles a function on its first call and its inline caches start empty, so a
// pool shim that had loaded all its code still spent ~40 ms (quiet machine, traced) between the
// hand-off and its lock manager in code running for the first time. Here it runs the start path's
// pure steps once on a made-up definition (a rehearsal): parse a start request, validate and
// normalize the definition, build QEMU's command line, encode what a start sends (a registration
// frame, a journal record, the state file's JSON, the ready line), read the clock.
// It touches no file, socket or lock of any VM and writes to no descriptor: a warm shim still holds
// nothing until it has a definition. The one thing it makes is an anonymous lease lifeline (warmLifeline);
// it also reads the QEMU capability cache (warmCapabilities).
import { createRequire } from 'node:module';
import { join } from 'node:path';
import {
  DEFAULT_CALL_LIMITS, createCodec, virtqProgram, definitionValidator, encodeFrame, normalizeDefinition, parseMessage, parseStartRequest, pathsOnly, sha256Hex, startRequestText,
  type Clock, type Layout,
} from '../protocol/index.js';
import { LineLogHub } from '../daemon/line-log.js';
import type { Logs } from '../daemon/log-filters.js';
import { rpcMetricsFor } from '../daemon/rpc-metrics.js';
import { DaemonService } from '../daemon/service.js';
import { shimRegistry } from './metrics.js';
import { readyLine } from '../daemon/shim-bootstrap.js';
import { buildQemuArgv } from '../drivers/hypervisor/qemu/argv.js';
import { encodeRecord } from '../drivers/journal/record-format.js';
import { lockSpareLifeline } from '../drivers/lock/spare-lifeline.js';
import { rehearseVm } from './warm-up-vm.js';
import { rehearseIo } from './warm-up-io.js';
import { rehearseHost } from './warm-up-host.js';
import type { SpareLifeline } from '../drivers/lock/types.js';
import { cachedCapabilities, resolveBinarySync, type QemuCapabilities } from '../drivers/hypervisor/qemu/capabilities.js';

/**
 * The rehearsal's VM: the fields a common start has (a disk, a kernel, a user NIC), so the
 * validator's and the command line's usual branches are the ones compiled. No path in it is
 * opened: only pure code sees it.
 */
const REHEARSAL = {
  name: 'warm-up-rehearsal', uuid: '00000000-0000-4000-8000-000000000000', memoryMiB: 64, vcpus: 1,
  kernel: { path: '/nonexistent/vmlinuz', cmdline: 'console=ttyS0' },
  disks: [{ path: '/nonexistent/disk.qcow2', format: 'qcow2', target: 'vda' }],
  interfaces: [{ type: 'user' }],
};

/** Runs the VM-independent first-use work of a start; synchronous, so it ends before stdin is read. */
export function warmUp(clock: Clock): void {
  try {
    rehearse(clock);
  } catch {
    // Only a warm-up: a rehearsal that fails (a test keeps it passing) leaves the start as a cold shim's.
  }
  // Level silent: this hub writes nothing anywhere; the VM's own hub is built once its name is known.
  const logs = new LineLogHub({ name: 'virtq-shim', bindings: {}, filters: 'silent' });
  logs.module('shim');
  try {
    rehearseService(clock, logs);
  } catch {
    // as the rehearsal above
  }
  try {
    rehearseVm(clock, logs, pathsOnly(normalizeDefinition(REHEARSAL, () => REHEARSAL.uuid)));
    rehearseIo();
  } catch {
    // as the rehearsal above
  }
  try {
    rehearseHost();
  } catch {
    // as the rehearsal above
  }
}

/**
 * The VM's RPC service and metrics registry, built and dropped (pure: nothing listens, no timer):
 * their constructors were first-time code after the hand-off in a profiled start (issue 15, session 12).
 * Returns the service for its test.
 */
export function rehearseService(clock: Clock, logs: Logs): DaemonService {
  const registry = shimRegistry(REHEARSAL);
  return new DaemonService({
    daemon: 'virtq-shim', role: 'shim', version: '0', clock, logs, sockets: { rw: '/nonexistent/rw', ro: '/nonexistent/ro', admin: '/nonexistent/admin' },
    metrics: { registry, ...rpcMetricsFor(registry, [virtqProgram]) },
  });
}

/**
 * A full garbage collection before the pool shim blocks reading its start: the garbage of loading
 * and of the warm-up was otherwise collected by the first GC after the hand-off (12–22 ms of a
 * profiled one under load, issue 15), and an idle pool shim holds less. The shipped shim has
 * `--expose-gc` on its command line (scripts/build.mjs: V8 takes the code cache only under the
 * flags it was made with), so `gc` is already global there. A shim run without its shebang's flags
 * (`node virtq-shim.js`, or from dist/lib in a test) sets it and reaches `gc` through a context made
 * after it.
 */
export function collectBeforeIdle(gc: (() => void) | undefined = (globalThis as { gc?: () => void }).gc): void {
  try {
    if (gc !== undefined) {
      gc();
      return;
    }
    // Loaded here, not imported: node:v8 (and node:vm) cost every shim, pool or cold, ~0.13 MiB PSS
    // once loaded (issue 15 target 2, session 13), and only a shim without the flag needs them.
    const load = createRequire(import.meta.url);
    (load('node:v8') as typeof import('node:v8')).setFlagsFromString('--expose-gc');
    ((load('node:vm') as typeof import('node:vm')).runInNewContext('gc') as () => void)();
  } catch {
    // Only a warm-up: without it the first GC after the hand-off collects the same.
  }
}

/** The rehearsal itself (exported for its test: it must run through, or the warm-up is lost silently). */
export function rehearse(clock: Clock): void {
  // The first reading of the monotonic clock loads Node's perf_hooks (the registrar's connect
  // takes the first one after the hand-off): every running shim has it loaded anyway.
  clock.monotonic();
  const request = parseStartRequest(startRequestText(REHEARSAL, false, undefined));
  const def = normalizeDefinition(request.definition, () => REHEARSAL.uuid);
  definitionValidator.check({});
  const resolved = pathsOnly(def);
  buildQemuArgv(resolved, { monitorSocket: '/nonexistent/m.sock', consoleSocket: '/nonexistent/c.sock', accel: 'tcg', sandbox: true, hostDevices: [] });
  // What a start encodes: its registration and updates (CBOR frames to virtqemud), its journal
  // records, its state file and its ready line.
  // With the limits every frame a server connection decodes is checked against (its checker's first call).
  const codec = createCodec(DEFAULT_CALL_LIMITS);
  const update = { name: def.name, uuid: def.uuid, state: 'running', reason: 'booted', qemuPid: 1, info: { accel: 'tcg', vcpus: def.vcpus, memoryMiB: def.memoryMiB } };
  parseMessage(codec.decode(encodeFrame(codec.encode({ prog: 'registry', proc: 'update', type: 'call', serial: 1, status: 'ok', body: update })).subarray(4)));
  encodeRecord({ seq: 1, ts: clock.now(), body: { event: 'started', ...update } });
  JSON.stringify({ format: 1, definition: resolved, ...update });
  readyLine({ name: def.name, uuid: def.uuid, state: 'running', reason: 'booted', socket: '/nonexistent/vm.sock', shimPid: 1, qemuPid: 1 });
  // The lease keys' SHA-256, whose constants the first hash computes (~1 ms): a migration's
  // destination hashes first when it claims the disks, while the last state arrives.
  sha256Hex(resolved.disks[0]?.path ?? def.name);
}

/**
 * Locks the lifeline the VM's QEMU will inherit, in the root's lifeline directory (the lockfile
 * plugin's `run/leases`), with util-linux flock(1) from PATH: the one flock(1) child a start
 * needs whatever its disks (drivers/lock/spare-lifeline.ts says why this leaks nothing and leases
 * nothing). Synchronous, before stdin is read. Undefined if it cannot: the start then locks one itself.
 */
export function warmLifeline(layout: Pick<Layout, 'runtime'>): SpareLifeline | undefined {
  return lockSpareLifeline('flock', join(layout.runtime, 'leases'));
}

/**
 * The QEMU binary's capabilities from the root's cache, read before stdin is (synchronously: the
 * shim blocks next). The start uses them only if the binary's identity is unchanged by then
 * (probeCapabilities' `known`). Undefined when the cache has none yet or the binary is missing:
 * the start then looks as a cold shim does.
 */
export function warmCapabilities(layout: Pick<Layout, 'state'>, binary: string, searchPath: string): QemuCapabilities | undefined {
  try {
    return cachedCapabilities(resolveBinarySync(binary, searchPath), join(layout.state, 'cache'));
  } catch {
    return undefined;
  }
}
