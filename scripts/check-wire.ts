// The wire lock: what of the catalogue is already on the wire (procedure order, since, access,
// servers, streams; event names; error codes), checked against protocol/wire-lock.json. Released
// entries never change or move; new ones are only appended. `UPDATE_WIRE_LOCK=1` records appends.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { adminProgram, errorCatalogue, networkProgram, nodedevProgram, registryProgram, secretProgram, storageProgram, virtqProgram, type Program } from '../protocol/index.js';

/** Every program virtq puts on the wire, in the order the lock and the docs list them. */
export const wirePrograms: readonly Program[] = [virtqProgram, registryProgram, adminProgram, storageProgram, secretProgram, nodedevProgram, networkProgram];

/** Where the lock lives, relative to the repository root. */
export const WIRE_LOCK_PATH = 'protocol/wire-lock.json';

/** One locked procedure. */
export interface LockedProc {
  name: string;
  since: string;
  readonly: boolean;
  /** Sorted, so declaring the same servers in another order is no change. */
  servers: string[];
  stream: boolean;
}

/** One locked event or error code. */
export interface LockedName {
  name: string;
  since: string;
}

/** The content of protocol/wire-lock.json. */
export interface WireLock {
  programs: Array<{ name: string; procedures: LockedProc[]; events: LockedName[] }>;
  errors: LockedName[];
}

/** How the catalogue differs from a lock. */
export interface WireDiff {
  /** Removed, renamed, reordered or changed entries: each one breaks released peers. */
  breaking: string[];
  /** Entries in the catalogue after the last locked one: fine, once recorded in the lock. */
  appended: string[];
}

/** The repository root: the nearest directory above this file holding package.json. */
export function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const up = dirname(dir);
    if (up === dir) throw new Error('no package.json above scripts/');
    dir = up;
  }
  return dir;
}

/** The lock the current catalogue would produce. */
export function currentWireLock(): WireLock {
  return {
    programs: wirePrograms.map((p) => ({
      name: p.name,
      procedures: Object.entries(p.procs).map(([name, s]) => ({
        name, since: s.since, readonly: s.readonly, servers: [...s.servers].sort(), stream: s.stream,
      })),
      events: Object.entries(p.events).map(([name, e]) => ({ name, since: e.since })),
    })),
    errors: Object.entries(errorCatalogue).map(([name, e]) => ({ name, since: e.since })),
  };
}

// Entries are flat, so sorting the top-level keys makes key order in a hand-edited lock irrelevant.
const canonical = (entry: object): string => JSON.stringify(entry, Object.keys(entry).sort());

// Compares one ordered list: position i of the lock must hold the same entry in the catalogue.
// `label` names an entry in messages, e.g. "procedure virtq.getInfo".
function compareList<T extends { name: string }>(label: (name: string) => string, locked: readonly T[], current: readonly T[], diff: WireDiff): void {
  locked.forEach((entry, i) => {
    const now = current[i];
    if (now === undefined) {
      diff.breaking.push(`${label(entry.name)} (#${i + 1}) was removed`);
    } else if (now.name !== entry.name) {
      diff.breaking.push(`${label(entry.name)} (#${i + 1}) is now ${label(now.name)}: removed, renamed or reordered`);
    } else if (canonical(now) !== canonical(entry)) {
      // More daemons serving a procedure breaks no peer: recorded like an append.
      const widened = servedByMore(entry, now);
      if (widened !== undefined) diff.appended.push(`${label(entry.name)} (now also served by ${widened.join(', ')})`);
      else diff.breaking.push(`${label(entry.name)} changed from ${JSON.stringify(entry)} to ${JSON.stringify(now)}`);
    }
  });
  for (const entry of current.slice(locked.length)) diff.appended.push(label(entry.name));
}

/** The servers `now` adds to `locked` when that is its only change, else undefined. */
function servedByMore(locked: object, now: object): string[] | undefined {
  const before = (locked as { servers?: unknown }).servers;
  const after = (now as { servers?: unknown }).servers;
  if (!Array.isArray(before) || !Array.isArray(after)) return undefined;
  if (canonical({ ...now, servers: [] }) !== canonical({ ...locked, servers: [] })) return undefined;
  if (!before.every((x) => after.includes(x))) return undefined;
  return after.filter((x) => !before.includes(x)).map(String);
}

/** Compares the catalogue with a lock. */
export function compareWireLock(locked: WireLock, current: WireLock): WireDiff {
  const diff: WireDiff = { breaking: [], appended: [] };
  const names = (l: WireLock) => l.programs.map((p) => ({ name: p.name }));
  compareList((n) => `program ${n}`, names(locked), names(current), diff);
  for (const [i, cp] of current.programs.entries()) {
    const lp = locked.programs[i];
    // A program that is new, or in a slot whose locked program was already reported, has no base.
    const base = lp !== undefined && lp.name === cp.name ? lp : { procedures: [], events: [] };
    compareList((n) => `procedure ${cp.name}.${n}`, base.procedures, cp.procedures, diff);
    compareList((n) => `event ${cp.name}.${n}`, base.events, cp.events, diff);
  }
  compareList((n) => `error ${n}`, locked.errors, current.errors, diff);
  return diff;
}

/** The lock as checked in: one entry per line, so a change shows as one added line. */
export function renderWireLock(lock: WireLock): string {
  const list = (items: readonly unknown[], indent: string): string =>
    items.length === 0 ? '[]' : `[\n${items.map((x) => `${indent}  ${JSON.stringify(x)}`).join(',\n')}\n${indent}]`;
  const programs = lock.programs.map((p) => [
    '    {',
    `      "name": ${JSON.stringify(p.name)},`,
    `      "procedures": ${list(p.procedures, '      ')},`,
    `      "events": ${list(p.events, '      ')}`,
    '    }',
  ].join('\n'));
  return `{\n  "programs": [\n${programs.join(',\n')}\n  ],\n  "errors": ${list(lock.errors, '  ')}\n}\n`;
}

/** Reads the checked-in lock. */
export function readWireLock(root = repoRoot()): WireLock {
  return JSON.parse(readFileSync(join(root, WIRE_LOCK_PATH), 'utf8')) as WireLock;
}

/**
 * Checks the catalogue against the lock; with `update`, records appended entries (never a
 * breaking change: undoing a release is a decision for a person, made by editing the lock).
 */
export function checkWire(update: boolean, root = repoRoot()): { diff: WireDiff; wrote: boolean } {
  const current = currentWireLock();
  const diff = compareWireLock(readWireLock(root), current);
  const wrote = update && diff.breaking.length === 0 && diff.appended.length > 0;
  if (wrote) writeFileSync(join(root, WIRE_LOCK_PATH), renderWireLock(current));
  return { diff, wrote };
}

function main(): void {
  const root = repoRoot();
  if (!existsSync(join(root, WIRE_LOCK_PATH)) && process.env['UPDATE_WIRE_LOCK'] === '1') {
    writeFileSync(join(root, WIRE_LOCK_PATH), renderWireLock(currentWireLock()));
    console.log(`wrote ${WIRE_LOCK_PATH}`);
    return;
  }
  const { diff, wrote } = checkWire(process.env['UPDATE_WIRE_LOCK'] === '1', root);
  for (const b of diff.breaking) console.error(`breaking: ${b}`);
  if (diff.breaking.length > 0) {
    console.error(`${WIRE_LOCK_PATH}: released entries may only be appended to, never changed`);
    process.exitCode = 1;
  } else if (wrote) {
    console.log(`${WIRE_LOCK_PATH}: recorded ${diff.appended.join(', ')}`);
  } else if (diff.appended.length > 0) {
    console.error(`not in ${WIRE_LOCK_PATH} yet: ${diff.appended.join(', ')}; refresh the lock with UPDATE_WIRE_LOCK=1 npm run check:wire`);
    process.exitCode = 1;
  } else {
    console.log(`${WIRE_LOCK_PATH}: up to date`);
  }
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) main();
