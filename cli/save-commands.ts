// The save, restore and snapshot commands' differences from the derived defaults (virsh's
// names and messages; file arguments resolved against the current directory).
import { resolve } from 'node:path';
import type { DomainRow, SnapshotInfo, virtqProgram } from '../protocol/index.js';
import { table } from './render.js';
import type { CallAdapter } from './command.js';

type Args = Record<string, unknown>;
type VirtqProc = keyof typeof virtqProgram.procs & string;
const vm = (a: Args): string => `'${String(a['name'])}'`;

// `snapshot-list --tree`: each snapshot under its parent, as virsh draws it.
function snapshotTree(snaps: readonly SnapshotInfo[]): string {
  const lines: string[] = [];
  const walk = (parent: string | undefined, indent: string): void => {
    for (const s of snaps.filter((x) => x.parent === parent)) {
      lines.push(`${indent}${s.name}${s.current ? ' (current)' : ''}`);
      walk(s.name, `${indent}  `);
    }
  };
  walk(undefined, '');
  return lines.map((l) => `${l}\n`).join('');
}

const snapshotRows = (snaps: readonly SnapshotInfo[]): string =>
  table(['Name', 'Creation Time', 'State', 'Memory', 'Parent', 'Current'], snaps.map((s) => [s.name, new Date(s.createdAt).toISOString(), s.state, s.memory ? 'yes' : 'no', s.parent ?? '-', s.current ? 'yes' : '']));

const fileArg = (description: string) => ({ name: 'file', description, required: true });

/** Adapters of the save and snapshot procedures, by procedure. */
export const saveAdapters: Readonly<Partial<Record<VirtqProc, CallAdapter>>> = {
  save: {
    arguments: [{ name: 'name', field: 'name', description: 'VM name', required: true }, fileArg('the image to write (relative paths resolve against the current directory)')],
    toArgs: (input, _d, ctx) => ({ name: input.args['name'], file: resolve(ctx.io.cwd, String(input.args['file'])) }),
    progress: (a) => `Saving ${vm(a)}`,
    render: (_r, a) => `Domain ${vm(a)} saved to ${String(a['file'])}\n`,
  },
  managedSave: {
    progress: (a) => `Saving ${vm(a)}`,
    render: (_r, a) => `Domain ${vm(a)} state saved by virtqemud; the next start resumes it\n`,
  },
  restore: {
    arguments: [fileArg('a save image written by virtq save (relative paths resolve against the current directory)')],
    hints: { help: { paused: 'leave the vCPUs paused once the state is loaded' } },
    toArgs: (input, _d, ctx) => ({ file: resolve(ctx.io.cwd, String(input.args['file'])), ...(input.opts['paused'] === true ? { paused: true } : {}) }),
    progress: (a) => `Restoring from ${String(a['file'])}`,
    render: (r, a) => `Domain '${(r as DomainRow).name}' restored from ${String(a['file'])}\n`,
  },
  managedSaveRemove: { render: (_r, a) => `Removed managedsave image for domain ${vm(a)}\n` },
  snapshotCreate: {
    hints: { help: { noMemory: 'leave the memory state out (disks only, internal)', diskOnly: 'external: a new qcow2 overlay per writable disk, the VM writes there from now on' } },
    progress: (a) => `Snapshotting ${vm(a)}`,
    render: (_r, a) => `Domain snapshot ${String(a['snapshot'])} created\n`,
  },
  snapshotList: {
    options: [{ flags: '--tree', key: 'tree', description: 'draw each snapshot under its parent' }],
    present: (r) => (r as { snapshots: SnapshotInfo[] }).snapshots,
    render: (rows, _a, input) => (input.opts['tree'] === true ? snapshotTree(rows as SnapshotInfo[]) : snapshotRows(rows as SnapshotInfo[])),
  },
  snapshotRevert: { progress: (a) => `Reverting ${vm(a)}`, render: (_r, a) => `Domain ${vm(a)} reverted to snapshot ${String(a['snapshot'])}\n` },
  snapshotDelete: {
    hints: { help: { metadata: 'forget the snapshot\'s metadata only; its images stay as they are', bandwidth: 'cap the merge of an external snapshot at this many MiB/s (as virsh blockcommit --bandwidth); domjobabort cancels it' } },
    render: (_r, a) => `Domain snapshot ${String(a['snapshot'])} deleted\n` },
};
