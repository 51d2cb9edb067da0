// The `virtq` program's commands: one per catalogue procedure with a `cli` name, built by
// callCommand; this table holds only what differs from the derived default (file arguments,
// nested disk arguments, virsh-like messages, list filters).
import { resolve } from 'node:path';
import type { TSchema } from '@sinclair/typebox';
import { DiskSpec, DomainName, VirtqError, virtqProgram, type DomainRow, type InterfaceAddresses, type StateResult } from '../protocol/index.js';
import { callCommand, type CallAdapter, type CommandSpec } from './command.js';
import { readDefinitionFile } from './definition-file.js';
import { LIBVIRT_OPTIONS, readLibvirtDefinition } from './libvirt-file.js';
import type { Input } from './derive.js';
import { ListOutput } from './json-output.js';
import { objectTable, table } from './render.js';
import { listFilter, listRows, renderList } from './list-view.js';
import { consoleCommand, eventCommand } from './stream-commands.js';
import { domeventsAdapter } from './event-history.js';
import { saveAdapters } from './save-commands.js';
import { migrationAdapters } from './migrate-commands.js';

type Args = Record<string, unknown>;

const vm = (a: Args): string => `'${String(a['name'])}'`;
const said = (text: string) => (_r: unknown, a: Args): string => `Domain ${vm(a)} ${text}\n`;
const json = (value: unknown): string => `${JSON.stringify(value, null, 2)}\n`;

const HELP = {
  paused: 'leave the vCPUs paused once QEMU is up',
  timeoutSec: 'wait this long for the guest, then destroy the VM',
  graceMs: 'how long to wait after SIGTERM before SIGKILL',
  readonly: 'attach the disk read-only',
  format: 'the image format (default raw)',
  bus: 'the bus the disk is on (default virtio)',
  shareable: 'allow other VMs to use the disk at the same time',
  path: 'the disk image (relative paths are resolved against the current directory)',
  active: 'only running, paused or starting VMs',
  inactive: 'only shut off or crashed VMs',
  persistent: 'only VMs with a stored definition',
  transient: 'only VMs without a stored definition',
  state: 'only VMs in this state',
};

const fileArgument = { name: 'file', description: 'the VM definition (JSON); relative kernel, initrd and disk paths are resolved against its directory', required: true };

// `attach-disk NAME PATH TARGET [--format F] ...`: the disk's fields flattened into the command line.
const attachDiskSchema = {
  ...DiskSpec,
  properties: { name: DomainName, ...DiskSpec.properties },
  required: ['name', ...(DiskSpec.required ?? [])],
} as unknown as TSchema;

function parseMonitorCommand(text: string): Args {
  const trimmed = text.trim();
  if (/^[a-z][a-z0-9_-]*$/i.test(trimmed)) return { execute: trimmed };
  let parsed: unknown;
  try {
    parsed = JSON.parse(trimmed);
  } catch (err) {
    throw new VirtqError('INVALID_ARG', `the QMP command is not valid JSON: ${(err as Error).message}`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new VirtqError('INVALID_ARG', 'the QMP command must be a JSON object such as {"execute":"query-status"}');
  return parsed as Args;
}

type VirtqProc = keyof typeof virtqProgram.procs & string;

/** What differs from the derived default, by procedure (a misspelt procedure fails tsc). */
const adapters: Readonly<Partial<Record<VirtqProc, CallAdapter>>> = {
  listDomains: {
    hints: { help: HELP },
    options: [{ flags: '--all', key: 'all', description: 'list inactive VMs too (default: active ones only)' }],
    toArgs: (input) => listFilter(input.opts),
    present: listRows,
    render: renderList,
    output: ListOutput,
    notes: 'Without a filter, lists the active VMs (starting, running, paused, shutting down), as virsh does.',
  },
  getState: {
    options: [{ flags: '--reason', key: 'reason', description: 'also print why the VM is in its state' }],
    render: (r, _a, input) => {
      const s = r as StateResult;
      return input.opts['reason'] === true ? `${s.state} (${s.reason})\n` : `${s.state}\n`;
    },
  },
  getDefinition: { render: json },
  shutdown: {
    hints: { help: HELP },
    progress: (a) => (a['timeoutSec'] === undefined ? undefined : `Shutting down ${vm(a)}`),
    render: (r, a) => {
      const s = r as StateResult;
      return s.state === 'shutoff' ? `Domain ${vm(a)} is shut off (${s.reason})\n` : `Domain ${vm(a)} is being shutdown\n`;
    },
  },
  destroy: { hints: { help: HELP }, render: said('destroyed') },
  reboot: { render: said('is being rebooted') },
  reset: { render: said('was reset') },
  suspend: { render: said('suspended') },
  resume: { render: said('resumed') },
  attachDisk: {
    schema: attachDiskSchema,
    arguments: [
      { name: 'name', field: 'name', description: 'VM name', required: true },
      { name: 'path', description: 'the disk image (relative paths resolve against the current directory); with --pool, a volume name', required: true },
      { name: 'target', field: 'target', description: 'guest device name, e.g. vdb', required: true },
    ],
    hints: { help: HELP, skip: ['path', 'source', 'encryption'] },
    options: [
      { flags: '--pool <pool>', key: 'pool', description: 'the source is a volume of this storage pool (virtstoraged finds its path)' },
      { flags: '--encrypt <secret-uuid>', key: 'encrypt', description: 'a LUKS-encrypted qcow2 disk: the secret (virtsecretd) holding its passphrase' },
    ],
    toArgs: (input, derived, ctx) => {
      const disk = derived.toArgs(input);
      const source = String(input.args['path']);
      const pool = input.opts['pool'];
      const where = typeof pool === 'string' ? { source: { pool, volume: source } } : { path: resolve(ctx.io.cwd, source) };
      const encryption = typeof input.opts['encrypt'] === 'string' ? { encryption: { secret: input.opts['encrypt'] } } : {};
      const { name, ...rest } = disk;
      return { name, disk: { ...where, ...rest, ...encryption } };
    },
    render: (_r, a) => `Disk ${String((a['disk'] as Args)['target'])} attached to ${vm(a)}\n`,
  },
  detachDisk: { hints: { help: { ...HELP, timeoutSec: 'how long to wait for the guest to release the disk', target: 'the guest device name, e.g. vdb' } }, render: (_r, a) => `Disk ${String(a['target'])} detached from ${vm(a)}\n` },
  qemuMonitorCommand: {
    arguments: [
      { name: 'name', field: 'name', description: 'VM name', required: true },
      { name: 'command', description: 'a QMP command as JSON, e.g. \'{"execute":"query-status"}\', or just its name', required: true },
    ],
    toArgs: (input) => ({ name: input.args['name'], command: parseMonitorCommand(String(input.args['command'])) }),
    notes: 'Prints QEMU\'s "return" value as JSON. Example: virtq qemu-monitor-command web1 \'{"execute":"query-block"}\'',
    render: (r) => json((r as { result: unknown }).result),
  },
  define: {
    arguments: [fileArgument],
    options: [
      { flags: '--from-libvirt-xml', key: 'fromLibvirtXml', description: 'the file is a libvirt domain XML (virsh dumpxml), converted as virtq convert does' },
      ...LIBVIRT_OPTIONS.map((o) => ({ ...o, description: `with --from-libvirt-xml: ${o.description}` })),
    ],
    toArgs: async (input, _d, ctx) => {
      const file = String(input.args['file']);
      if (input.opts['fromLibvirtXml'] === true) return { definition: await readLibvirtDefinition(file, ctx.io.cwd, input.opts, ctx.io.stderr) };
      if (input.opts['lossy'] === true || input.opts['bridgeNetwork'] !== undefined) throw new VirtqError('INVALID_ARG', '--lossy and --bridge-network apply to a libvirt XML file: add --from-libvirt-xml');
      return { definition: await readDefinitionFile(file, ctx.io.cwd) };
    },
    notes: 'With --from-libvirt-xml, FILE is a libvirt domain XML: what virtq supports is carried over (see virtq convert), and anything else makes the command fail listing each element path and why, unless --lossy is given.',
    render: (r, _a, input) => `Domain '${(r as DomainRow).name}' defined from ${String(input.args['file'])}\n`,
  },
  undefine: { render: said('has been undefined') },
  create: {
    arguments: [fileArgument],
    hints: { skip: ['definition'], help: HELP },
    toArgs: async (input, _d, ctx) => ({
      definition: await readDefinitionFile(String(input.args['file']), ctx.io.cwd),
      ...(input.opts['paused'] === true ? { paused: true } : {}),
    }),
    progress: (a) => `Starting '${String((a['definition'] as Args)['name'])}'`,
    render: (r, _a, input) => `Domain '${(r as DomainRow).name}' created from ${String(input.args['file'])}\n`,
  },
  start: { hints: { help: HELP }, progress: (a) => `Starting ${vm(a)}`, render: said('started') },
  setAutostart: {
    hints: { skip: ['autostart'] },
    options: [{ flags: '--disable', key: 'disable', description: 'stop starting the VM with virtqemud' }],
    toArgs: (input) => ({ name: input.args['name'], autostart: input.opts['disable'] !== true }),
    render: (_r, a) => `Domain ${vm(a)} ${a['autostart'] === true ? 'marked as autostarted' : 'unmarked as autostarted'}\n`,
  },
};

// `domifaddr`: virsh's table, one row per address (a NIC without a lease shows none).
function ifaddrTable(r: unknown): string {
  const rows = (r as { interfaces: InterfaceAddresses[] }).interfaces.flatMap((i) => (i.addresses.length === 0
    ? [[i.name, i.mac, '-', '-']]
    : i.addresses.map((a) => [i.name, i.mac, a.type, `${a.address}/${a.prefix}`])));
  return table(['Name', 'MAC address', 'Protocol', 'Address'], rows);
}

const networkAdapters: Readonly<Partial<Record<VirtqProc, CallAdapter>>> = {
  attachInterface: {
    arguments: [{ name: 'name', field: 'name', description: 'VM name', required: true }],
    options: [{ flags: '--network <network>', key: 'network', description: 'the virtnetworkd network the NIC joins (required)' }],
    hints: { help: { mac: 'the NIC\'s MAC (default: one virtnetworkd generates)' } },
    toArgs: (input, derived) => {
      const network = input.opts['network'];
      if (typeof network !== 'string') throw new VirtqError('INVALID_ARG', 'give the network the NIC joins with --network NAME');
      return { ...derived.toArgs(input), network };
    },
    render: (r, a) => `Interface ${(r as { mac: string }).mac} attached to ${vm(a)} on network ${String(a['network'])}\n`,
  },
  detachInterface: {
    hints: { help: { mac: 'the MAC of the NIC to unplug', timeoutSec: 'how long to wait for the guest to release the NIC' } },
    render: (_r, a) => `Interface ${String(a['mac'])} detached from ${vm(a)}\n`,
  },
  interfaceAddresses: { render: ifaddrTable },
};

/** Procedures whose command is not a call: the console stream and the event watcher. */
const ownCommands: Readonly<Partial<Record<VirtqProc, () => CommandSpec>>> = {
  openConsole: consoleCommand,
  subscribeEvents: eventCommand,
};

/** Every `virtq` command: the catalogue's CLI procedures, plus `event` (subscribeEvents). */
export function virtqCommands(): CommandSpec[] {
  const commands: CommandSpec[] = [];
  for (const [procName, spec] of Object.entries(virtqProgram.procs) as [VirtqProc, (typeof virtqProgram.procs)[VirtqProc]][]) {
    const own = ownCommands[procName];
    if (own !== undefined) commands.push(own());
    else if (spec.cli !== undefined) commands.push(callCommand(virtqProgram, procName, adapters[procName] ?? networkAdapters[procName] ?? saveAdapters[procName] ?? migrationAdapters[procName] ?? (procName === 'getEvents' ? domeventsAdapter : undefined)));
  }
  return commands;
}
