// Recovery at start-up, before any socket is served: rebuild the registry from the definitions
// on disk and the shims' state files. Live shims keep their names (they re-register on their
// own); VMs whose shim died but whose QEMU runs are listed with the shim lost; VMs that died
// while virtqemud was down are reported with their recorded state, never silently dropped.
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { ACTIVE_STATES, NAME_PATTERN, UNDEFINE_SOURCE_NOTE, isLive, shimDir, shimSockets, shimStateFile, type Clock, type Layout, type Logger } from '../protocol/index.js';
import { isTempName } from '../drivers/fs/atomic-file.js';
import { isLiveQemu, liveQemuCommandLines, processStands } from '../drivers/host/proc.js';
import { readRuntimeStateSync, writeRuntimeState, type RuntimeState } from '../daemon/runtime-state.js';
import type { DefinitionStore } from './definitions.js';
import type { DomainRecord, DomainRegistry } from './registry.js';
import type { LifecycleEvent } from '../protocol/index.js';
import type { HostJournal } from './host-journal.js';

/** Marks, in a state file's details, an end virtqemud found rather than the shim recorded. */
const FOUND_BY = 'foundBy';

/** What recovery tells the event journal: a VM found stopped, with the stop its journal already holds, if any. */
export interface RecoveryJournal {
  journal: Pick<HostJournal, 'recordedStop'>;
  stopped(r: DomainRecord, journaled: LifecycleEvent | undefined): void;
  /** A VM found running: where its journal ends now, so what its shim journals before it re-registers is told then. */
  live(r: DomainRecord): void;
}

const NAME_RE = new RegExp(NAME_PATTERN);

/** What recovery found, for the log and the benchmark. */
export interface RecoveryReport {
  definitions: number;
  liveShims: number;
  lostShims: number;
  stopped: number;
  ms: number;
  /**
   * Defined VMs that migrated away asking for their definition here to go (--undefine-source),
   * whose shim went before virtqemud could remove it: the daemon undefines them before it serves.
   */
  movedAway: string[];
  /**
   * QEMUs this root's shims spawned and no state file names: the shim died between spawning QEMU
   * and recording it (chaos seed 34005). Nothing can take one over, so the daemon has reaping
   * shims stop them, as it does for a failed start's (host-handlers.ts).
   */
  orphanQemus: Array<{ name: string; uuid: string; pid: number }>;
}

/** Fills `registry`; with `probeMs` > 0 the scan first probes every shim's socket in parallel under that deadline. */
export async function recover(registry: DomainRegistry, store: DefinitionStore, layout: Layout, clock: Clock, log: Logger, probeMs = 0, events?: RecoveryJournal): Promise<RecoveryReport> {
  const t0 = clock.monotonic();
  const defs = await store.loadAll();
  for (const { definition, autostart } of defs) {
    registry.claim({ name: definition.name, uuid: definition.uuid, persistent: true, autostart, definition, state: 'shutoff', reason: 'defined' });
  }
  const states = readStates(layout);
  // By default a shim whose process stands is listed up at once, without waiting on 200 socket
  // probes that each wake a shim: its socket is checked once virtqemud serves (the first
  // reconciliation pass runs at once), and a live shim re-registers on its own within a few
  // hundred ms. QEMU is always checked here, so a VM that died while virtqemud was down is never
  // listed as running. probeMs > 0 probes every socket first, as before.
  const probes = probeMs > 0 ? await Promise.all(states.map((s) => isLive(s.sockets.rw, probeMs))) : states.map((s) => processStands(s.shimPid));
  const report: RecoveryReport = { definitions: defs.length, liveShims: 0, lostShims: 0, stopped: 0, ms: 0, movedAway: [], orphanQemus: [] };
  const orphans = orphanFinder(layout);
  await Promise.all(states.map(async (s, i) => {
    const shimLive = probes[i] === true;
    const qemuLive = s.qemuPid !== undefined && isLiveQemu(s.qemuPid, s.uuid);
    if (!shimLive && !qemuLive) {
      const pid = orphans(s);
      if (pid !== undefined) report.orphanQemus.push({ name: s.name, uuid: s.uuid, pid });
    }
    let record = registry.get(s.name);
    if (record !== undefined && record.uuid !== s.uuid) {
      log.error({ name: s.name, msgId: 'RECOVERY_CONFLICT' }, 'a runtime state file names a VM whose definition has another UUID; keeping the definition');
      return;
    }
    if (record === undefined) {
      // A transient VM whose shim recorded its end (destroyed, shut down) is gone, as the running
      // virtqemud had already forgotten it: listing it again would also re-claim its name in a
      // fleet. An end virtqemud found (marked below) stays listed until undefined, as before.
      if (!shimLive && !qemuLive && !ACTIVE_STATES.has(s.state) && s.details?.[FOUND_BY] === undefined) return;
      record = registry.claim({ name: s.name, uuid: s.uuid, persistent: false, autostart: false, definition: undefined, state: s.state, reason: s.reason });
    }
    if (shimLive || qemuLive) {
      adoptLive(registry, record, s, shimLive, shimStateFile(layout, s.name));
      events?.live(record);
      if (shimLive) report.liveShims++;
      else report.lostShims++;
      return;
    }
    report.stopped++;
    // Dead shim, dead QEMU: record how it ended. The state file stays the VM's record (a later
    // start replaces it, undefine removes it), so the next restart reports the same end.
    // A stop the shim journaled but could not put in its state file before it died is the real end.
    // (A stop an earlier virtqemud found is journaled too, but the listing keeps saying it was lost while down.)
    const journaled = ACTIVE_STATES.has(s.state) ? events?.journal.recordedStop(s.name, s.uuid, s.qemuStartedAt ?? 0) : undefined;
    const byShim = journaled?.details?.['foundBy'] === undefined ? journaled : undefined;
    registry.stopped(record, byShim?.state ?? (ACTIVE_STATES.has(s.state) ? 'crashed' : s.state), byShim?.reason ?? (ACTIVE_STATES.has(s.state) ? 'lost-while-virtqemud-was-down' : s.reason));
    if (record.persistent && owesSourceUndefine(s)) report.movedAway.push(s.name);
    if (!ACTIVE_STATES.has(s.state)) return;
    events?.stopped(record, journaled);
    log.warn({ name: s.name, state: record.state, reason: record.reason, msgId: 'VM_STOPPED_WHILE_DOWN' }, 'VM stopped while virtqemud was down');
    await writeVmEnd(shimStateFile(layout, s.name), { ...s, qemuPid: undefined, state: record.state, reason: record.reason, details: { ...s.details, [FOUND_BY]: 'virtqemud' }, updatedAt: clock.now() }, log)
      .catch((err: unknown) => log.error({ err, name: s.name }, 'cannot record the end of a VM in its state file'));
  }));
  report.ms = clock.monotonic() - t0;
  log.info({ ...report, msgId: 'RECOVERED' }, 'recovered state');
  return report;
}

/**
 * For a state file whose shim and recorded QEMU are gone: a live QEMU of its VM (UUID) that this
 * root's shim spawned (its monitor socket's path), which the file does not name. The processes
 * are read once, on first use: most restarts have no such file to ask about.
 */
function orphanFinder(layout: Layout): (s: RuntimeState) => number | undefined {
  let qemus: Array<{ pid: number; cmdline: string }> | undefined;
  return (s) => {
    qemus ??= liveQemuCommandLines();
    const uuid = `\0-uuid\0${s.uuid}\0`;
    const monitor = `path=${shimSockets(layout, s.name).monitor},`;
    return qemus.find((q) => q.pid !== s.qemuPid && q.cmdline.includes(uuid) && q.cmdline.includes(monitor))?.pid;
  };
}

/** Writes a VM's end, as virtqemud found it, into its state file: in the space reserve when the disk is full (logged). */
export async function writeVmEnd(file: string, end: RuntimeState, log: Logger): Promise<void> {
  if (await writeRuntimeState(file, end)) log.error({ name: end.name, msgId: 'SPACE_RESERVE_USED' }, 'no space left for a VM\'s end: wrote it in the space reserve; free space on its filesystem');
}

/** True when `s` is the end of a VM that migrated away with --undefine-source still owed here (MigrationSource). */
export function owesSourceUndefine(s: RuntimeState): boolean {
  return s.state === 'shutoff' && s.reason === 'migrated' && s.details?.[UNDEFINE_SOURCE_NOTE] === true;
}

/** Lists `record` as its state file `s` says, with that file's shim (live or not): at recovery, and for a start whose shim died before it registered. */
export function adoptLive(registry: DomainRegistry, record: DomainRecord, s: RuntimeState, shimLive: boolean, stateFile: string): void {
  registry.shimAdopted(record, { pid: s.shimPid, socket: s.sockets.rw, roSocket: s.sockets.ro, adminSocket: s.sockets.admin, stateFile, conn: undefined },
    { state: s.state, reason: s.reason, qemuPid: s.qemuPid }, shimLive);
}

// Synchronous: nothing is served before recovery ends, and 50-200 small files read in the main
// thread cost less CPU and far less waiting than as many thread-pool round trips (runtime-state.ts).
function readStates(layout: Layout): RuntimeState[] {
  const dir = shimDir(layout);
  let files: string[];
  try {
    files = readdirSync(dir);
  } catch {
    return [];
  }
  const names = files.filter((f) => f.endsWith('.json') && !isTempName(f));
  const states = names.map((f) => readRuntimeStateSync(join(dir, f)));
  // A state file is NAME.json: one naming another VM (or a path, "../x") is not trusted with paths.
  return states.filter((s, i): s is RuntimeState => s !== undefined && !s.private && `${s.name}.json` === names[i] && NAME_RE.test(s.name));
}
