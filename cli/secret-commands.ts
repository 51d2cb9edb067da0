// The `secret` program's commands (virsh's secret-* names), built from the catalogue by
// callCommand; this table holds what differs: definitions from a file or from flags, and values
// as base64 (virsh's form) or from a file, never echoed.
import { SecretDefinition, VirtqError, lazyValidator, secretProgram, type SecretRow } from '../protocol/index.js';
import { callCommand, type CallAdapter, type CommandSpec, type RunContext } from './command.js';
import { readJsonObject } from './definition-file.js';
import type { Input } from './derive.js';
import { objectTable } from './render.js';

type SecretProc = keyof typeof secretProgram.procs & string;

const usageText = (s: SecretRow): string => (s.usage === undefined ? '-' : s.usage.type === 'volume' ? `volume ${s.usage.volume}` : `text ${s.usage.text}`);
const rows = (list: SecretRow[]): string => objectTable(list.map((s) => ({ uuid: s.uuid, usage: usageText(s), private: s.private, ephemeral: s.ephemeral, hasValue: s.hasValue, description: s.description ?? '' })));

// A definition from FILE, with flags on top (or flags alone).
async function definitionOf(input: Input, ctx: RunContext): Promise<Record<string, unknown>> {
  const file = input.args['file'];
  const def: Record<string, unknown> = typeof file === 'string' ? (await readJsonObject(file, ctx.io.cwd, 'secret definition')).value : {};
  const o = input.opts;
  if (typeof o['uuid'] === 'string') def['uuid'] = o['uuid'];
  if (typeof o['usageVolume'] === 'string') def['usage'] = { type: 'volume', volume: o['usageVolume'] };
  if (typeof o['usageText'] === 'string') def['usage'] = { type: 'text', text: o['usageText'] };
  if (typeof o['description'] === 'string') def['description'] = o['description'];
  if (o['private'] === true) def['private'] = true;
  if (o['ephemeral'] === true) def['ephemeral'] = true;
  return { definition: lazyValidator(SecretDefinition).parse(def, 'secret definition') };
}

async function valueOf(input: Input, ctx: RunContext): Promise<Uint8Array> {
  const b64 = input.args['base64'];
  const file = input.opts['file'];
  if ((typeof b64 === 'string') === (typeof file === 'string')) throw new VirtqError('INVALID_ARG', 'give the value as BASE64 or with --file PATH (exactly one)');
  if (typeof file === 'string') {
    const chunks: Uint8Array[] = [];
    for await (const c of ctx.io.files.read(file)) chunks.push(c);
    return Buffer.concat(chunks);
  }
  const text = String(b64);
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(text) || text.length % 4 !== 0) throw new VirtqError('INVALID_ARG', 'the value is not valid base64 (use --file PATH for raw bytes)');
  return Buffer.from(text, 'base64');
}

const adapters: Readonly<Partial<Record<SecretProc, CallAdapter>>> = {
  listSecrets: { render: (r) => rows((r as { secrets: SecretRow[] }).secrets) },
  defineSecret: {
    arguments: [{ name: 'file', description: 'a JSON definition ({"usage":{"type":"volume","volume":"pool/vol"},"private":true,...}); flags override it', required: false }],
    options: [
      { flags: '--uuid <uuid>', key: 'uuid', description: 'the secret\'s UUID (default: a new one; an existing one redefines it)' },
      { flags: '--usage-volume <volume>', key: 'usageVolume', description: 'the volume (pool/volume or path) it is the passphrase of' },
      { flags: '--usage-text <text>', key: 'usageText', description: 'a free-text usage' },
      { flags: '--description <text>', key: 'description', description: 'a description' },
      { flags: '--private', key: 'private', description: 'its value may never be read back' },
      { flags: '--ephemeral', key: 'ephemeral', description: 'keep it in virtsecretd\'s memory only' },
    ],
    toArgs: (input, _d, ctx) => definitionOf(input, ctx),
    render: (r) => `Secret ${(r as SecretRow).uuid} created\n`,
  },
  undefineSecret: { render: (_r, a) => `Secret ${String(a['uuid'])} deleted\n` },
  setValue: {
    arguments: [
      { name: 'uuid', field: 'uuid', description: 'the secret', required: true },
      { name: 'base64', description: 'the value, base64-encoded (or use --file)', required: false },
    ],
    options: [{ flags: '--file <path>', key: 'file', description: 'read the value\'s raw bytes from this file (keeps it out of the process list)' }],
    toArgs: async (input, _d, ctx) => ({ uuid: input.args['uuid'], value: await valueOf(input, ctx) }),
    render: () => 'Secret value set\n',
  },
  getValue: {
    present: (r) => ({ value: Buffer.from((r as { value: Uint8Array }).value).toString('base64') }),
    render: (r) => `${(r as { value: string }).value}\n`,
    notes: 'Prints the value base64-encoded, as virsh does. Refused for private secrets and on the read-only socket.',
  },
};

/** Every secret command: the catalogue's CLI procedures. */
export function secretCommands(): CommandSpec[] {
  return (Object.entries(secretProgram.procs) as [SecretProc, (typeof secretProgram.procs)[SecretProc]][])
    .filter(([, spec]) => spec.cli !== undefined)
    .map(([procName]) => callCommand(secretProgram, procName, adapters[procName]));
}
