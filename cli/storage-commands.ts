// The `storage` program's commands (virsh's pool-* and vol-* names), built from the catalogue by
// callCommand; this table holds what differs: sizes written as people write them, definition
// files, and the long operations — clone, upload, download — with progress and Ctrl-C.
import { randomBytes } from 'node:crypto';
import { resolve } from 'node:path';
import {
  JobProgress, PoolDefinition, lazyValidator, storageProgram,
  type PoolRow, type VolumeRow,
} from '../protocol/index.js';
import { callCommand, type CallAdapter, type CommandSpec, type RunContext } from './command.js';
import { readJsonObject } from './definition-file.js';
import type { Input } from './derive.js';
import { keyValues, objectTable } from './render.js';
import { progressReporter } from './progress.js';
import { formatSize, parseSize } from './sizes.js';
import { runDownload, runUpload } from './volume-commands.js';

type Args = Record<string, unknown>;
type StorageProc = keyof typeof storageProgram.procs & string;

const poolRows = (rows: PoolRow[]): string => objectTable(rows.map((p) => ({ name: p.name, state: p.state, autostart: p.autostart, path: p.path, capacity: formatSize(p.capacity), available: formatSize(p.available), volumes: p.volumes })));
const volRows = (rows: VolumeRow[]): string => objectTable(rows.map((v) => ({ name: v.name, format: v.format, capacity: formatSize(v.capacity), allocation: formatSize(v.allocation), encrypted: v.encrypted, path: v.path })));
const volBlock = (v: VolumeRow): string => keyValues([
  ['Name', v.name], ['Pool', v.pool], ['Path', v.path], ['Format', v.format], ['Capacity', formatSize(v.capacity)],
  ['Allocation', formatSize(v.allocation)], ['Encrypted', v.encrypted ? 'yes' : 'no'],
  ['Backing', v.backingChain.length === 0 ? '-' : v.backingChain.map((b) => `${b.path} (${b.format})`).join(' <- ')],
]);
const sizeArg = (name: string, description: string) => ({ name, field: name, description, required: true, parse: parseSize });
const said = (what: (a: Args) => string) => (_r: unknown, a: Args): string => `${what(a)}\n`;
const vol = (a: Args): string => `Vol ${String(a['name'])}`;
const isProgress = lazyValidator(JobProgress);

/** Runs `work` as job `job`, printing its progress, and cancels it on Ctrl-C. */
async function asJob<T>(ctx: RunContext, label: string, job: string, work: () => Promise<T>): Promise<T> {
  const conn = await ctx.connectService();
  const bar = progressReporter(ctx, label);
  void (async () => {
    for await (const ev of conn.events()) if (ev.name === 'progress' && isProgress.check(ev.body) && ev.body.job === job) bar.report(ev.body);
  })();
  const interrupt = ctx.io.onInterrupt(() => void conn.call('cancelJob', { job }).catch(() => undefined));
  try {
    return await work();
  } finally {
    interrupt.dispose();
    bar.done();
  }
}

async function runClone(ctx: RunContext, input: Input): Promise<void> {
  const [pool, source, name] = ['pool', 'source', 'name'].map((k) => String(input.args[k])) as [string, string, string];
  const job = `cli-${randomBytes(4).toString('hex')}`;
  const conn = await ctx.connectService();
  const row = await asJob(ctx, `Cloning ${source}`, job, () => conn.call('cloneVolume', { pool, source, name, job, ...(input.opts['thin'] === true ? { thin: true } : {}) }, { timeoutMs: 0 })) as VolumeRow;
  if (ctx.json) ctx.printJson(row, true);
  else ctx.print(`Vol ${name} cloned from ${source}\n`);
}

/** `vol-upload` / `vol-download POOL NAME FILE`. */
function transfer(volume: string, file: string, run: CallAdapter['run']): CallAdapter {
  return {
    arguments: [
      { name: 'pool', field: 'pool', description: 'the pool', required: true },
      { name: 'name', field: 'name', description: volume, required: true },
      { name: 'file', description: file, required: true },
    ],
    notes: PROGRESS_NOTES, jsonLines: true, ...(run === undefined ? {} : { run }),
  };
}

const PROGRESS_NOTES = 'Shows a progress bar on a terminal; with --json prints one {"event":"progress",...} line per report, then the result. Ctrl-C cancels: nothing is left half-made.';

/** What differs from the derived default, by procedure (a misspelt procedure fails tsc). */
const adapters: Readonly<Partial<Record<StorageProc, CallAdapter>>> = {
  listPools: { render: (r) => poolRows((r as { pools: PoolRow[] }).pools) },
  getPool: { render: (r) => { const p = r as PoolRow; return keyValues([['Name', p.name], ['State', p.state], ['Autostart', p.autostart ? 'yes' : 'no'], ['Path', p.path], ['Capacity', formatSize(p.capacity)], ['Allocation', formatSize(p.allocation)], ['Available', formatSize(p.available)], ['Volumes', String(p.volumes)]]); } },
  definePool: {
    arguments: [{ name: 'file', description: 'the pool definition (JSON: {"name","type":"dir","path"}); a relative path resolves against the file', required: true }],
    toArgs: async (input, _d, ctx) => {
      const { path, value } = await readJsonObject(String(input.args['file']), ctx.io.cwd, 'pool definition');
      if (typeof value['path'] === 'string' && !value['path'].startsWith('/')) value['path'] = resolve(path, '..', value['path']);
      return { definition: lazyValidator(PoolDefinition).parse(value, 'pool definition') };
    },
    render: (r) => `Pool ${(r as PoolRow).name} defined\n`,
  },
  undefinePool: { render: said((a) => `Pool ${String(a['name'])} has been undefined`) },
  startPool: { hints: { help: { build: 'create the pool\'s directory first if it does not exist' } }, render: said((a) => `Pool ${String(a['name'])} started`) },
  stopPool: { render: said((a) => `Pool ${String(a['name'])} destroyed`) },
  setPoolAutostart: {
    hints: { skip: ['autostart'] },
    options: [{ flags: '--disable', key: 'disable', description: 'stop starting the pool with virtstoraged' }],
    toArgs: (input) => ({ name: input.args['name'], autostart: input.opts['disable'] !== true }),
    render: (_r, a) => `Pool ${String(a['name'])} ${a['autostart'] === true ? 'marked as autostarted' : 'unmarked as autostarted'}\n`,
  },
  refreshPool: { render: said((a) => `Pool ${String(a['name'])} refreshed`) },
  listVolumes: { render: (r) => volRows((r as { volumes: VolumeRow[] }).volumes) },
  getVolume: { render: (r) => volBlock(r as VolumeRow) },
  createVolume: {
    arguments: [
      { name: 'pool', field: 'pool', description: 'the pool', required: true },
      { name: 'name', field: 'name', description: 'the new volume\'s name', required: true },
      sizeArg('capacity', 'its size: bytes, or with a unit (10G, 512MiB, 1.5GB)'),
    ],
    hints: { skip: ['backing', 'encryption'], help: { format: 'raw (default) or qcow2' } },
    options: [
      { flags: '--backing-vol <name>', key: 'backingVol', description: 'a qcow2 volume on this backing volume (format qcow2 implied)' },
      { flags: '--backing-vol-pool <pool>', key: 'backingVolPool', description: 'the backing volume\'s pool (default: the same pool)' },
      { flags: '--encrypt <secret-uuid>', key: 'encrypt', description: 'LUKS-encrypt the qcow2 volume with this secret\'s value (from virtsecretd)' },
    ],
    toArgs: (input, derived) => {
      const args: Args = derived.toArgs(input);
      const backing = input.opts['backingVol'];
      if (typeof backing === 'string') args['backing'] = { pool: input.opts['backingVolPool'] ?? input.args['pool'], name: backing };
      if (typeof input.opts['encrypt'] === 'string') args['encryption'] = { secret: input.opts['encrypt'] };
      if ((args['backing'] !== undefined || args['encryption'] !== undefined) && args['format'] === undefined) args['format'] = 'qcow2';
      return args;
    },
    render: (r) => `Vol ${(r as VolumeRow).name} created (${formatSize((r as VolumeRow).capacity)}, ${(r as VolumeRow).format})\n`,
  },
  cloneVolume: {
    arguments: [
      { name: 'pool', field: 'pool', description: 'the pool', required: true },
      { name: 'source', field: 'source', description: 'the volume to clone', required: true },
      { name: 'name', field: 'name', description: 'the new volume\'s name', required: true },
    ],
    hints: { skip: ['job'], help: { thin: 'make a qcow2 overlay backed by the source instead of a full copy' } },
    notes: PROGRESS_NOTES, jsonLines: true, run: runClone,
  },
  resizeVolume: {
    arguments: [
      { name: 'pool', field: 'pool', description: 'the pool', required: true },
      { name: 'name', field: 'name', description: 'the volume', required: true },
      sizeArg('capacity', 'the new size: bytes, or with a unit (10G, 512MiB)'),
    ],
    hints: { help: { shrink: 'allow a size below the current one (data past it is lost)' } },
    render: (r) => `Size of volume '${(r as VolumeRow).name}' successfully changed to ${formatSize((r as VolumeRow).capacity)}\n`,
  },
  deleteVolume: { render: said((a) => `${vol(a)} deleted`) },
  uploadVolume: transfer('the volume to fill', 'the local file whose bytes replace the volume\'s', runUpload),
  downloadVolume: transfer('the volume', 'the local file to write (it appears only once complete)', runDownload),
  cancelJob: { render: said((a) => `Job ${String(a['job'])} cancelled`) },
};

/** Every storage command: the catalogue's CLI procedures, plus pool-define-as. */
export function storageCommands(): CommandSpec[] {
  const commands: CommandSpec[] = [];
  for (const [procName, spec] of Object.entries(storageProgram.procs) as [StorageProc, (typeof storageProgram.procs)[StorageProc]][]) {
    if (spec.cli !== undefined) commands.push(callCommand(storageProgram, procName, adapters[procName]));
  }
  commands.push(callCommand(storageProgram, 'definePool', {
    name: 'pool-define-as',
    arguments: [
      { name: 'name', description: 'the pool\'s name', required: true },
      { name: 'path', description: 'its directory (relative paths resolve against the current directory)', required: true },
    ],
    toArgs: (input, _d, ctx) => ({ definition: { name: input.args['name'], type: 'dir', path: resolve(ctx.io.cwd, String(input.args['path'])) } }),
    render: (r) => `Pool ${(r as PoolRow).name} defined\n`,
  }));
  return commands;
}
