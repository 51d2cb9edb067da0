// The fast path's command-line grammar (cli/fast-argv.ts) held against the full CLI: its tables
// are the list command's options and the catalogue's states, and any command line it takes the
// full CLI parses into the same call (procedure, arguments, URI, --json), never a usage error.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DOMAIN_STATES } from '../../../protocol/index.js';
import { parseUri } from '../../../protocol/uri.js';
import { LIST_FLAGS, LIST_STATES, parseFastArgv } from '../../../cli/fast-argv.js';
import { listFilter } from '../../../cli/list-view.js';
import { buildProgram, commandTree } from '../../../cli/program.js';
import { fake, FakeSink } from './fake-io.js';

const tree = commandTree();
const spec = (name: string) => tree.top.find((s) => s.name === name);
const URI = 'qemu:///system?root=/r';

const parses = (uri: string): boolean => {
  try {
    parseUri(uri, {});
    return true;
  } catch {
    return false;
  }
};

describe('the fast path grammar', () => {
  it('knows exactly the list options and the states the full command has', () => {
    const list = spec('list');
    expect(list?.options.map((o) => o.flags.split(' ')[0]).sort()).toEqual([...Object.keys(LIST_FLAGS), '--state'].sort());
    expect(list?.options.find((o) => o.flags.startsWith('--state'))?.choices).toEqual(LIST_STATES);
    expect(LIST_STATES).toEqual(DOMAIN_STATES);
    for (const o of list?.options ?? []) if (LIST_FLAGS[o.flags] !== undefined) expect(LIST_FLAGS[o.flags]).toBe(o.key);
    expect(spec('dominfo')).toMatchObject({ procedure: 'getInfo', options: [], arguments: [{ name: 'name', required: true }] });
    expect(list?.procedure).toBe('listDomains');
  });

  it('knows exactly the global options the program has', () => {
    const sink = new FakeSink();
    const program = buildProgram({ env: {}, stdout: sink, stderr: sink, width: 100, execute: async () => undefined, commands: tree, argv: ['list'] });
    expect(program.options.map((o) => o.flags).sort()).toEqual(['--json', '-V, --version', '-c, --connect <uri>']);
  });

  it('takes the hot command lines and leaves the rest', () => {
    expect(parseFastArgv(['--version'])).toEqual({ kind: 'version' });
    expect(parseFastArgv(['-c', URI, 'list', '--all', '--json'])).toEqual({ kind: 'list', connect: URI, json: true, opts: { all: true } });
    expect(parseFastArgv(['--json', 'dominfo', 'vm1', `--connect=${URI}`])).toEqual({ kind: 'dominfo', connect: URI, json: true, name: 'vm1' });
    expect(parseFastArgv(['list', '--state=shutoff'])).toEqual({ kind: 'list', connect: undefined, json: false, opts: { state: 'shutoff' } });
    for (const argv of [[], ['help'], ['list', '-h'], ['list', '--all', '--all'], ['-cqemu:///session', 'list'], ['list', '--state', 'nope'],
      ['dominfo'], ['dominfo', 'a', 'b'], ['dominfo', '--', 'a'], ['-c', '--json', 'list'], ['--version', 'list'], ['start', 'a'], ['list', '--json', '--json']]) {
      expect(parseFastArgv(argv), argv.join(' ')).toBeUndefined();
    }
  });

  it('parses any command line it takes as the full CLI does (same call, URI and --json)', async () => {
    const token = fc.constantFrom('list', 'dominfo', 'vm1', '-c', '--connect', `--connect=${URI}`, URI, '--json', '--all', '--active', '--inactive',
      '--persistent', '--transient', '--state', '--state=running', 'shutoff', 'nope', '--bogus', '-V', '--version', '--', '-h', 'help');
    await fc.assert(fc.asyncProperty(fc.array(token, { maxLength: 7 }), async (argv) => {
      const cmd = parseFastArgv(argv);
      if (cmd === undefined || cmd.kind === 'version') return;
      // A --connect value that is no URI (`--connect list list`) is handed to the full CLI by
      // fast-run.ts, which parses the URI before it acts: only lines it runs itself must agree.
      if (cmd.connect !== undefined && !parses(cmd.connect)) return;
      const f = fake({ env: { VIRTQ_DEFAULT_URI: 'qemu:///session' }, procs: { listDomains: { domains: [] }, getInfo: { name: 'vm1' } } });
      expect(await f.run(...argv), `${argv.join(' ')}: ${f.stderr.text}`).toBe(0);
      const args = cmd.kind === 'list' ? listFilter(cmd.opts) : { name: cmd.name };
      expect(f.calls.map((c) => [c.proc, c.args])).toEqual([[cmd.kind === 'list' ? 'listDomains' : 'getInfo', args]]);
      expect(f.uris).toEqual([cmd.connect ?? 'qemu:///session']);
      expect(f.stdout.text.startsWith('[') || f.stdout.text.startsWith('{')).toBe(cmd.json);
    }), { numRuns: 300 });
  });
});
