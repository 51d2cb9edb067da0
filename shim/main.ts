// virtq-shim: runs one VM. The only file that touches process.*: it parses argv and starts the
// shim in the framework's process shell, which prints one JSON line on stdout when the VM is up
// (or why it is not) and turns signals into a clean stop that leaves QEMU running.
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { NAME_PATTERN, VirtqError, parseStartRequest, parseUri, systemClock, type Clock, type IncomingState, type Logger } from '../protocol/index.js';
import { reapOrphan, type ReapRequest } from './reap.js';
import { collectBeforeIdle, warmCapabilities, warmLifeline, warmUp } from './warm-up.js';
import type { QemuCapabilities } from '../drivers/hypervisor/qemu/capabilities.js';
import { composeShim, layoutFor, type ShimOptions } from './compose.js';
import type { SpareLifeline } from '../drivers/lock/types.js';
import { startQemuLauncher, type QemuLauncher } from './vm/qemu-launcher.js';
import { qemuEnv } from './vm/qemu-process.js';
import { parseAllowList } from '../daemon/qmp-proxy-options.js';
import { readyLine } from '../daemon/shim-bootstrap.js';
import { runMain, type Started } from '../daemon/main-shell.js';
import type { Logs } from '../daemon/log-filters.js';
import type { Shim } from './shim.js';
import { parseHandoverFds } from './upgrade/handover-wire.js';
import { awaitTake, reportOutcome } from './upgrade/successor.js';
import { upgradeShim } from './upgrade/predecessor.js';
import type { HandedOver } from './upgrade/parts.js';
import { shimCodeCache, type CodeCacheKind } from './code-cache.js';

/** How long a successor waits for its predecessor's `take` (the predecessor waits for a quiet moment first). */
const HANDOVER_WAIT_MS = 60_000;

const VERSION = '0.1.0';
const USAGE = `usage: virtq-shim [--root DIR] --definition FILE|- [--paused] [--restore IMAGE | --incoming unix|tcp] [--no-register] [--embed]
       virtq-shim [--root DIR] --definition - --start-request [--no-register] [--embed]
       virtq-shim [--root DIR] --attach NAME [--no-register]
       virtq-shim [--root DIR] --reap NAME --qemu-pid PID --uuid UUID

SIGUSR2 (or 'virtq admin upgrade NAME') upgrades a running shim: it starts the shim binary as it is
on disk now, hands it its sockets and QEMU connections, and exits; the VM never stops.

Runs one VM: spawns QEMU, serves the VM's API on run/shims/NAME.sock (-ro, -admin) and QMP for
other tools on NAME-qmp-proxy.sock, and prints one JSON line on stdout once the VM is running. SIGTERM stops the shim and leaves the VM running;
'virtq-shim --attach NAME' starts a successor that takes it over.

  --root DIR            keep config, state, sockets and logs under DIR
  --mode system|session without --root: the FHS or the per-user layout (default: system for root)
  --definition FILE     the VM definition (JSON); '-' reads it from stdin
  --attach NAME         re-attach to the running VM NAME from its runtime state file
  --handover FDS        (internal) the successor of an upgrading shim: its sockets are these fds
  --reap NAME           stop VM NAME's QEMU (--qemu-pid, --uuid) that no shim runs and no state file
                        records (virtqemud asks this after a shim died while starting it)
  --paused              start with the vCPUs paused
  --restore IMAGE       start from a save image (virtq save) instead of booting; it must hold this definition's VM
  --incoming unix|tcp   start QEMU waiting for an incoming migration on a unix socket or a loopback TCP port (virtqemud's migratePrepare asks this)
  --start-request       (internal, with --definition -) stdin holds the whole start, {definition, paused, incoming},
                        instead of the flags above: how virtqemud and embed mode start shims, warm or cold
  --no-register         do not register with virtqemud (no daemon needed)
  --embed               private VM of an embedding application (implies --no-register)
  --register-timeout S  how long to wait for virtqemud (default 10)
  --qemu PATH           the QEMU binary (default: $VIRTQ_QEMU or qemu-system-x86_64)
  --log-filters F       e.g. "debug:qemu.qmp warn:rpc" (default: $LOG_FILTERS or info)
  --log-stderr          also log to stderr
  --metrics HOST:PORT   also serve this VM's GET /metrics over HTTP
  --storage-uri URI     virtstoraged, for disks that name a volume (default: storage:///system?root=DIR,
                        or of the --mode layout)
  --secret-uri URI      virtsecretd, for encrypted disks (default: likewise)
  --network-uri URI     virtnetworkd, for network interfaces (default: likewise)
  --daemon-wait S       how long a start waits for those daemons, a volume's pool or a network (default 30)
  --no-qmp-proxy        do not serve the shared QMP socket run/shims/NAME-qmp-proxy.sock
  --qmp-proxy-allow L   comma-separated QMP commands that change the VM which tools on that socket may
                        send, besides the definition's qmpProxy.allow (query-* always pass)`;

/** What a command line asks for: run a VM, or reap an orphan QEMU. */
type Parsed = ShimOptions | (ReapRequest & { kind: 'reap' });

function parse(argv: string[]): Parsed | 'help' {
  const { values } = parseArgs({
    args: argv,
    options: {
      root: { type: 'string' }, mode: { type: 'string' }, definition: { type: 'string' }, attach: { type: 'string' }, paused: { type: 'boolean' }, restore: { type: 'string' }, incoming: { type: 'string' },
      'no-register': { type: 'boolean' }, embed: { type: 'boolean' }, 'register-timeout': { type: 'string' },
      qemu: { type: 'string' }, metrics: { type: 'string' }, reap: { type: 'string' }, 'qemu-pid': { type: 'string' }, uuid: { type: 'string' }, 'storage-uri': { type: 'string' }, 'secret-uri': { type: 'string' }, 'network-uri': { type: 'string' }, 'daemon-wait': { type: 'string' }, 'no-qmp-proxy': { type: 'boolean' }, 'qmp-proxy-allow': { type: 'string' }, 'start-request': { type: 'boolean' }, 'log-filters': { type: 'string' }, 'log-stderr': { type: 'boolean' }, handover: { type: 'string' }, help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  if (values.help === true) return 'help';
  if (values.reap !== undefined) return reapArgs(values.reap, values['qemu-pid'], values.uuid);
  if ((values.definition === undefined) === (values.attach === undefined)) throw new VirtqError('INVALID_ARG', 'give exactly one of --definition or --attach');
  if (values.handover !== undefined && values.attach === undefined) throw new VirtqError('INVALID_ARG', '--handover goes with --attach');
  if (values['start-request'] === true && values.definition !== '-') throw new VirtqError('INVALID_ARG', '--start-request goes with --definition -');
  // The name becomes file names (the log file is opened before the definition is validated):
  // anything that is not a valid VM name must never reach a path.
  const validName = new RegExp(NAME_PATTERN);
  if (values.attach !== undefined && !validName.test(values.attach)) throw new VirtqError('INVALID_ARG', `--attach: "${values.attach}" is not a valid VM name`);
  if (values.mode !== undefined && values.mode !== 'system' && values.mode !== 'session') throw new VirtqError('INVALID_ARG', '--mode must be system or session');
  let name = values.attach ?? '';
  let mode: ShimOptions['mode'];
  let spareLifeline: SpareLifeline | undefined;
  let qemuLauncher: QemuLauncher | undefined;
  let knownCaps: QemuCapabilities | undefined;
  const qemuBinary = values.qemu ?? process.env['VIRTQ_QEMU'] ?? 'qemu-system-x86_64';
  if (values.definition !== undefined) {
    // A shim that reads its definition from stdin may wait there (a warm shim of the pool): do the
    // VM-independent first-use work, and lock its QEMU's lease lifeline, before, not after, the definition arrives.
    if (values.definition === '-') {
      // Built-ins every start loads on first use, loaded now: stdout (the ready line; runMain
      // touches it first) and node:cluster (net's listen requires it at the first bind).
      void process.stdout;
      process.getBuiltinModule('node:cluster');
      // runMain's first timer and signal listeners after the hand-off compiled Node's timer list and
      // signal wrap code there (~5 ms of a profiled hand-off, issue 15): done here, leaving neither
      // behind (SIGPIPE is ignored by Node anyway, so the listener changes nothing meanwhile).
      clearInterval(setInterval(() => undefined, 1 << 30));
      const noop = (): void => undefined;
      process.once('SIGPIPE', noop).removeListener('SIGPIPE', noop);
      warmUp(systemClock());
      const layout = layoutFor(values.root, values.mode, process.env, process.getuid?.() ?? 0);
      spareLifeline = warmLifeline(layout);
      // The capability cache's check depends on no VM: done while waiting, rechecked at the start.
      knownCaps = warmCapabilities(layout, qemuBinary, process.env['PATH'] ?? '/usr/local/bin:/usr/bin:/bin');
      // QEMU's launcher, forked now from a small process instead of from this one after the hand-off (shim/vm/qemu-launcher.ts).
      const lifeline = spareLifeline?.held();
      qemuLauncher = lifeline === undefined ? undefined : startQemuLauncher(lifeline, qemuEnv(process.env));
      collectBeforeIdle();
    }
    const text = readFileSync(values.definition === '-' ? 0 : values.definition, 'utf8');
    const start = values['start-request'] === true ? fromStartRequest(values, text) : fromFlags(values, text);
    const given = (start.definition as { name?: unknown } | null)?.name;
    name = typeof given === 'string' && validName.test(given) ? given : 'unnamed';
    mode = { kind: 'start', ...start };
  } else {
    mode = { kind: 'attach', name };
  }
  const handover = values.handover === undefined ? undefined : parseHandoverFds(values.handover);
  const timeout = Number(values['register-timeout'] ?? '10');
  if (!Number.isFinite(timeout) || timeout < 0) throw new VirtqError('INVALID_ARG', '--register-timeout must be a number of seconds');
  const daemonWait = Number(values['daemon-wait'] ?? '30');
  if (!Number.isFinite(daemonWait) || daemonWait < 0) throw new VirtqError('INVALID_ARG', '--daemon-wait must be a number of seconds');
  for (const [flag, scheme] of [['storage-uri', 'storage'], ['secret-uri', 'secret'], ['network-uri', 'network']] as const) {
    const uri = values[flag];
    if (uri !== undefined && parseUri(uri).kind !== 'daemon') throw new VirtqError('INVALID_ARG', `--${flag} must be a ${scheme}:/// URI`);
  }
  return {
    root: values.root, placement: values.mode as 'system' | 'session' | undefined, mode, name, register: values['no-register'] !== true, registerTimeoutMs: timeout * 1000,
    embed: values.embed === true, qemuBinary,
    logFilters: values['log-filters'], logStderr: values['log-stderr'] === true, metricsAddress: values.metrics,
    storageUri: values['storage-uri'], secretUri: values['secret-uri'], networkUri: values['network-uri'], daemonWaitMs: daemonWait * 1000,
    qmpProxy: { enabled: values['no-qmp-proxy'] !== true, allow: parseAllowList(values['qmp-proxy-allow']) },
    ...(handover === undefined ? {} : { handover }),
    ...(spareLifeline === undefined ? {} : { spareLifeline }),
    ...(qemuLauncher === undefined ? {} : { qemuLauncher }),
    ...(knownCaps === undefined ? {} : { knownCaps }),
    // An upgrade starts the script on disk now (VIRTQ_SHIM_UPGRADE_SCRIPT: another one, e.g. to test a broken binary).
    relaunch: { execPath: process.execPath, execArgv: [...process.execArgv], script: process.env['VIRTQ_SHIM_UPGRADE_SCRIPT'] ?? process.argv[1] ?? '', argv: [...argv], env: process.env },
  };
}

/** The start a command line asks for: how a shim is run by hand (the definition in `text`). */
type StartFlags = { paused?: boolean; restore?: string; incoming?: string };
type Start = Omit<Extract<ShimOptions['mode'], { kind: 'start' }>, 'kind'>;

function fromFlags(values: StartFlags, text: string): Start {
  let definition: unknown;
  try {
    definition = JSON.parse(text);
  } catch (err) {
    throw new VirtqError('INVALID_ARG', `definition is not valid JSON: ${(err as Error).message}`);
  }
  if (values.restore !== undefined && !values.restore.startsWith('/')) throw new VirtqError('INVALID_ARG', '--restore needs an absolute path');
  if (values.incoming !== undefined && values.incoming !== 'unix' && values.incoming !== 'tcp') throw new VirtqError('INVALID_ARG', `--incoming takes unix or tcp, not ${JSON.stringify(values.incoming)}`);
  if (values.restore !== undefined && values.incoming !== undefined) throw new VirtqError('INVALID_ARG', '--restore and --incoming exclude each other: a VM gets its state from one place');
  const incoming: IncomingState | undefined = values.restore !== undefined ? { kind: 'image', file: values.restore } : values.incoming !== undefined ? { kind: 'migration', transport: values.incoming } : undefined;
  return { definition, paused: values.paused === true, ...(incoming === undefined ? {} : { incoming }) };
}

// virtqemud's and embed mode's way (a warm shim is started before its start is known): the whole
// start on stdin. The flags would say it twice, so they are refused beside it.
function fromStartRequest(values: StartFlags, text: string): Start {
  if (values.paused !== undefined || values.restore !== undefined || values.incoming !== undefined) throw new VirtqError('INVALID_ARG', '--start-request carries paused, restore and incoming itself: give none of --paused, --restore, --incoming with it');
  const req = parseStartRequest(text);
  return { definition: req.definition, paused: req.paused, ...(req.incoming === undefined ? {} : { incoming: req.incoming }), requested: true };
}

function reapArgs(name: string, pid: string | undefined, uuid: string | undefined): ReapRequest & { kind: 'reap' } {
  if (!new RegExp(NAME_PATTERN).test(name)) throw new VirtqError('INVALID_ARG', `--reap: "${name}" is not a valid VM name`);
  const n = Number(pid);
  if (!Number.isInteger(n) || n <= 1) throw new VirtqError('INVALID_ARG', '--reap needs --qemu-pid PID');
  if (uuid === undefined || !/^[0-9a-fA-F-]{36}$/.test(uuid)) throw new VirtqError('INVALID_ARG', '--reap needs --uuid UUID');
  return { kind: 'reap', name, pid: n, uuid, clock: systemClock() };
}

/**
 * The code cache (shim/code-cache.ts) is written once, 3 s after a start or when the shim exits,
 * whichever comes first: late enough to hold what the start and its first seconds compiled (an
 * incoming migration's switchover among them), before the shim's first full GCs drop that code
 * (--bytecode-old-age=1), and also by a shim that lives less than that (a migration's destination
 * whose VM leaves again). Once per root, body and node: a shim that loaded a cache covering its
 * start writes none.
 */
const SAVE_CODE_CACHE_AFTER_MS = 3000;

function saveCodeCacheLater(clock: Clock, kind: CodeCacheKind, log: Logger): void {
  const cache = shimCodeCache();
  if (cache === undefined) return;
  let done = false;
  const save = (): void => {
    if (done) return;
    done = true;
    const began = clock.monotonic();
    const saved = cache.save(kind);
    try {
      log.info({ msgId: 'SHIM_CODE_CACHE', loaded: cache.state, loadedKind: cache.kind ?? null, saved: saved ? kind : null, ms: Math.round(clock.monotonic() - began) }, 'code cache');
    } catch {
      // At exit the log may be closed already: the cache is what matters.
    }
  };
  const timer = clock.setTimeout(save, SAVE_CODE_CACHE_AFTER_MS);
  process.once('exit', () => {
    timer.dispose();
    save();
  });
}

async function start(parsed: Parsed): Promise<Started> {
  if ('kind' in parsed) {
    const reaped = await reapOrphan(parsed);
    return { readyLine: JSON.stringify({ ok: true, reaped: reaped ? parsed.pid : null }), stop: () => undefined, done: Promise.resolve(), flush: () => undefined };
  }
  const opts = parsed;
  const clock = systemClock();
  let handedOver: HandedOver | undefined;
  if (opts.handover !== undefined) {
    // Stray writes to a pipe whose reader (the old shim) has exited must not kill this process.
    process.stderr.on('error', () => undefined);
    handedOver = await awaitTake(process, opts.handover, clock, HANDOVER_WAIT_MS);
  }
  let shim: Shim;
  let logs: Logs;
  try {
    ({ shim, logs } = await composeShim(opts, process.env, VERSION, handedOver));
  } catch (err) {
    if (handedOver !== undefined) reportOutcome(process, { ok: false, error: err });
    throw err;
  }
  if (handedOver !== undefined) reportOutcome(process, { ok: true, pid: process.pid });
  process.on('SIGUSR2', () => void upgradeShim(shim.handoverParts()).catch(() => undefined)); // logged by the upgrade
  if (opts.mode.kind === 'start') saveCodeCacheLater(clock, opts.mode.incoming?.kind === 'migration' ? 'incoming' : 'start', logs.module('shim'));
  const s = shim.runtimeState();
  return {
    readyLine: readyLine({ name: s.name, uuid: s.uuid, state: s.state, reason: s.reason, socket: s.sockets.rw, shimPid: process.pid, ...(s.qemuPid === undefined ? {} : { qemuPid: s.qemuPid }), ...shim.readyFields() }),
    // The shim stops and leaves QEMU running; `done` also settles when the VM stops for good.
    stop: () => void shim.stop(),
    done: shim.done,
    flush: () => logs.flush(),
  };
}

void runMain({ binary: 'virtq-shim', usage: USAGE, parse: (argv) => parse([...argv]), start }, process);
