// The old shim's side of an upgrade (decision 0021). It starts the shim binary as it is on disk
// now with its sockets as extra fds, waits until that process has loaded, cuts over at a quiet
// moment (no VM job, no call, no QMP command in flight), and exits once the successor serves the
// VM. QEMU never notices: its monitor and console connections stay open the whole time, and
// what it writes while nobody reads waits in the kernel's socket buffer. Disk leases are not
// this shim's to hand over: they belong to holder processes bound to QEMU's lifetime (0004).
// A successor that fails, hangs or dies before it has taken over is killed and this shim
// carries on (roll back, never forward).
import { spawn, type ChildProcess } from 'node:child_process';
import { VirtqError, delay, type ServerClient } from '../../protocol/index.js';
import type { MonitorHandover } from '../../drivers/hypervisor/types.js';
import { fdOf, resumeReading, stopReading } from '../../drivers/host/fd-handover.js';
import { FIRST_HANDOVER_FD, parseSuccessorMessage, successorArgs, type HandoverFds, type SuccessorMessage } from './handover-wire.js';
import type { HandoverParts } from './parts.js';
import { awaitUpgradable, upgradableNow } from './readiness.js';

/**
 * How long this shim may still be bringing its VM up when asked (a successor re-attaching: QEMU
 * redials its monitor within 30 s), how long the successor may take to load (a busy host), to
 * take over, and how long we wait for a quiet moment.
 */
export interface UpgradeTimeouts {
  upMs: number;
  readyMs: number;
  takeMs: number;
  quietMs: number;
}

const DEFAULT_TIMEOUTS: UpgradeTimeouts = { upMs: 30_000, readyMs: 30_000, takeMs: 30_000, quietMs: 10_000 };
const STDERR_TAIL = 2048;

/** What an upgrade did. */
export interface UpgradeResult {
  name: string;
  oldPid: number;
  newPid: number;
  /** Milliseconds during which nobody read QEMU's monitor and console (from the cut to `taken`). */
  cutoverMs: number;
}

/**
 * Upgrades the shim whose parts are `p`. `keep` names a client whose connection stays open
 * (the one waiting for this upgrade's reply); every other client sees its connection closed
 * and reconnects to the successor. Throws, with the old shim still serving, when anything fails.
 */
export async function upgradeShim(p: HandoverParts, keep?: ServerClient, timeouts: UpgradeTimeouts = DEFAULT_TIMEOUTS): Promise<UpgradeResult> {
  const { vm } = p;
  const name = vm.def.name;
  if (p.relaunch === undefined) throw new VirtqError('NOT_SUPPORTED', `the shim of VM "${name}" was started without a way to relaunch itself (embedded use)`);
  // Before the VM's job lock is taken: waiting for the bring-up holds up no lifecycle call.
  await awaitUpgradable(p, timeouts.upMs);
  // As the VM's one job: no lifecycle operation or hot-plug runs meanwhile, and a second upgrade waits, then finds this shim gone.
  return vm.jobs.run(UPGRADE_JOB, async () => {
    const result = await checkedHandOver(p, keep, timeouts);
    p.handedOver();
    return result;
  });
}

const UPGRADE_JOB = 'upgrade';

async function checkedHandOver(p: HandoverParts, keep: ServerClient | undefined, timeouts: UpgradeTimeouts): Promise<UpgradeResult> {
  const { vm } = p;
  const name = vm.def.name;
  upgradableNow(p);
  const qmpSocket = vm.link.currentSocket;
  if (qmpSocket === undefined) throw new VirtqError('OPERATION_INVALID', `VM "${name}" has no monitor connection right now (QEMU is redialling); try again in a second`);
  return handOver(p, qmpSocket, keep, timeouts);
}

async function handOver(p: HandoverParts, qmpSocket: import('node:net').Socket, keep: ServerClient | undefined, t: UpgradeTimeouts): Promise<UpgradeResult> {
  const { vm, log } = p;
  const name = vm.def.name;
  const relaunch = p.relaunch as NonNullable<HandoverParts['relaunch']>;
  const listeners = new Map(p.service.server.listening().map((l) => [l.access, l.server] as const));
  const consoleFds = p.console.fds();
  const ours = [
    ['rw', fdOf(need(listeners.get('rw'), 'rw'), 'the rw socket')], ['ro', fdOf(need(listeners.get('ro'), 'ro'), 'the ro socket')],
    ['admin', fdOf(need(listeners.get('admin'), 'admin'), 'the admin socket')], ['monitorListener', p.monitors.listenerFd()],
    ['consoleListener', consoleFds.listener], ['qmp', fdOf(qmpSocket, 'the QMP connection')],
    ...(consoleFds.qemu === undefined ? [] : [['console', consoleFds.qemu]]),
  ] as Array<[keyof HandoverFds, number]>;
  const theirs = Object.fromEntries(ours.map(([k], i) => [k, FIRST_HANDOVER_FD + i])) as unknown as HandoverFds;
  const args = [...relaunch.execArgv, relaunch.script, ...successorArgs(relaunch.argv, name, theirs)];
  log.info({ msgId: 'SHIM_UPGRADE_START', script: relaunch.script }, 'upgrading the shim: starting its successor');
  const child = spawn(relaunch.execPath, args, { env: relaunch.env, detached: true, stdio: ['ignore', 'ignore', 'pipe', 'ipc', ...ours.map(([, fd]) => fd)] });
  const successor = watch(child);
  let cut: { qmp: MonitorHandover; at: number } | undefined;
  let frozen = false;
  try {
    await successor.expect('ready', t.readyMs, p);
    frozen = true;
    await p.freeze();
    cut = await cutOver(p, keep, t.quietMs);
    await p.freeze(); // events read up to the cut are in the state file before the successor reads it
    child.send({ type: 'take', qmpLeftover: cut.qmp.leftover.toString('base64'), qmpSession: cut.qmp.session });
    const taken = await successor.expect('taken', t.takeMs, p);
    const cutoverMs = p.clock.monotonic() - cut.at;
    // This process's copies of the fds close; the kernel sockets live on in the successor.
    await p.console.release();
    p.monitors.release();
    cut.qmp.socket.destroy();
    child.channel?.unref();
    child.stderr?.destroy();
    child.unref();
    log.info({ msgId: 'SHIM_UPGRADED', newPid: taken.type === 'taken' ? taken.pid : 0, cutoverMs }, 'the successor serves the VM; this shim exits');
    return { name, oldPid: process.pid, newPid: child.pid ?? 0, cutoverMs };
  } catch (err) {
    const e = VirtqError.from(err);
    await successor.kill();
    if (cut !== undefined) await rollBack(p, cut.qmp);
    else if (frozen) await p.thaw().catch((thawErr: unknown) => log.error({ err: thawErr }, 'cannot register again after a failed upgrade'));
    log.error({ msgId: 'SHIM_UPGRADE_ROLLED_BACK', err: e }, 'shim upgrade failed; this shim keeps serving the VM');
    throw new VirtqError('OPERATION_FAILED', `upgrade of the shim of VM "${name}" failed, and the old shim (pid ${process.pid}) keeps serving it: ${e.message}${successor.stderrTail()}`, { cause: e, details: { rolledBack: true } });
  }
}

function need<T>(v: T | undefined, what: string): T {
  if (v === undefined) throw new VirtqError('INTERNAL', `the shim does not listen on its ${what} socket`);
  return v;
}

// Waits for a quiet moment, then in one synchronous step stops reading QMP and the console and
// stops serving: nothing this process does after it can touch QEMU or a client.
async function cutOver(p: HandoverParts, keep: ServerClient | undefined, quietMs: number): Promise<{ qmp: MonitorHandover; at: number }> {
  const deadline = p.clock.monotonic() + quietMs;
  const ownCalls = keep === undefined ? 0 : 1;
  for (;;) {
    const job = p.vm.jobs.active === UPGRADE_JOB ? undefined : p.vm.jobs.active;
    const busy = job ?? (p.service.server.callsInFlight > ownCalls ? `${p.service.server.callsInFlight - ownCalls} call(s)` : undefined);
    if (busy === undefined) {
      try {
        const qmp = p.vm.link.handOver(stopReading);
        p.console.stopReading();
        p.service.server.release((c) => c === keep);
        return { qmp, at: p.clock.monotonic() };
      } catch (err) {
        if (VirtqError.from(err).code !== 'OPERATION_INVALID') throw err;
      }
    }
    if (p.clock.monotonic() > deadline) throw new VirtqError('OPERATION_INVALID', `VM "${p.vm.def.name}" did not become idle within ${quietMs} ms (${busy ?? 'a QMP command'} in flight)`);
    await delay(p.clock, 2);
  }
}

// After the cut: this shim serves again, on its own copies of the fds it kept (QEMU's
// connections) and on sockets bound anew (the successor, now dead, held the only listeners).
async function rollBack(p: HandoverParts, qmp: MonitorHandover): Promise<void> {
  const modes = { rw: 0o600, ro: 0o666, admin: 0o600 } as const;
  for (const access of ['rw', 'ro', 'admin'] as const) {
    await p.service.server.listen(p.sockets[access], access, modes[access]).catch((err: unknown) => p.log.error({ err, access }, 'cannot listen again after a failed upgrade'));
  }
  p.monitors.markResumed(qmp.socket, { leftover: qmp.leftover, session: qmp.session });
  await p.vm.link.attach(qmp.socket);
  resumeReading(qmp.socket);
  p.console.resumeAfterHandover();
  await p.thaw().catch((err: unknown) => p.log.error({ err }, 'cannot register again after a failed upgrade'));
}

interface Successor {
  expect(type: 'ready' | 'taken', timeoutMs: number, p: HandoverParts): Promise<SuccessorMessage>;
  kill(): Promise<void>;
  stderrTail(): string;
}

function watch(child: ChildProcess): Successor {
  let stderr = '';
  child.stderr?.on('data', (b: Buffer) => { stderr = (stderr + b.toString('utf8')).slice(-STDERR_TAIL); });
  child.stderr?.on('error', () => undefined);
  let exited: string | undefined;
  const exit = new Promise<void>((resolve) => {
    child.once('exit', (code, signal) => { exited = signal === null ? `exit status ${String(code)}` : `signal ${signal}`; resolve(); });
    child.once('error', (err) => { exited = err.message; resolve(); });
  });
  const messages: SuccessorMessage[] = [];
  let wake: () => void = () => undefined;
  child.on('message', (m: unknown) => {
    const msg = parseSuccessorMessage(m);
    if (msg !== undefined) messages.push(msg);
    wake();
  });
  return {
    async expect(type, timeoutMs, p) {
      const deadline = p.clock.monotonic() + timeoutMs;
      for (;;) {
        const msg = messages.shift();
        if (msg?.type === 'failed') throw new VirtqError('OPERATION_FAILED', `the successor failed: ${msg.code}: ${msg.message}`);
        if (msg?.type === type) return msg;
        if (msg !== undefined) continue;
        if (exited !== undefined) throw new VirtqError('OPERATION_FAILED', `the successor ended (${exited}) before it was ${type}`);
        const left = deadline - p.clock.monotonic();
        if (left <= 0) throw new VirtqError('TIMEOUT', `the successor was not ${type} within ${timeoutMs} ms`);
        await Promise.race([new Promise<void>((resolve) => { wake = resolve; }), exit, delay(p.clock, Math.min(left, 1000))]);
      }
    },
    async kill() {
      if (exited === undefined) child.kill('SIGKILL');
      await exit;
    },
    stderrTail: () => (stderr.trim() === '' ? '' : ` (its stderr: ${stderr.trim().slice(-500)})`),
  };
}
