// pickCommand: the one command a command line runs, found before commander parses it, and the
// whole tree whenever that is not certain (help, unknown names, unknown options).
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { pickCommand } from '../../../cli/command-pick.js';
import { commandTree } from '../../../cli/program.js';
import { fake } from './fake-io.js';

const tree = commandTree();

describe('pickCommand', () => {
  it('names the command after the global options', () => {
    expect(pickCommand(['list', '--all'], tree)).toEqual({ kind: 'one', name: 'list' });
    expect(pickCommand(['-c', 'qemu:///session', '--json', 'dominfo', 'vm1'], tree)).toEqual({ kind: 'one', name: 'dominfo' });
    expect(pickCommand(['--connect=qemu:///session', 'list'], tree)).toEqual({ kind: 'one', name: 'list' });
    expect(pickCommand(['-cqemu:///session', 'list'], tree)).toEqual({ kind: 'one', name: 'list' });
    expect(pickCommand(['--connect', 'list', 'start', 'x'], tree)).toEqual({ kind: 'one', name: 'start' });
    expect(pickCommand(['admin', 'server-info'], tree)).toEqual({ kind: 'one', name: 'admin' });
  });

  it('registers nothing for a bare --version', () => {
    expect(pickCommand(['--version'], tree)).toEqual({ kind: 'none' });
    expect(pickCommand(['-V'], tree)).toEqual({ kind: 'none' });
  });

  it('takes the whole tree for help, unknown names, unknown options and an empty line', () => {
    for (const argv of [[], ['help', 'list'], ['--help'], ['lsit'], ['--bogus', 'list'], ['--json']]) expect(pickCommand(argv, tree)).toEqual({ kind: 'all' });
  });

  it('never names a command that is not in the tree (any argv)', () => {
    const names = new Set([...tree.top.map((s) => s.name), 'admin', '__complete']);
    fc.assert(fc.property(fc.array(fc.oneof(fc.string(), fc.constantFrom('-c', '--json', '-V', 'list', 'admin', '--connect')), { maxLength: 6 }), (argv) => {
      const p = pickCommand(argv, tree);
      if (p.kind === 'one') expect(names.has(p.name)).toBe(true);
    }));
  });
});

describe('the program built for one command', () => {
  it('says the same as the whole tree for a misspelt command and for an unknown option', async () => {
    const f = fake();
    expect(await f.run('lsit')).toBe(2);
    expect(f.stderr.text).toMatch(/unknown command 'lsit'.*Did you mean list/s);
    const g = fake();
    expect(await g.run('list', '--bogus')).toBe(2);
    expect(g.stderr.text).toContain("unknown option '--bogus'");
  });

  it('prints the version without any command registered', async () => {
    const f = fake();
    expect(await f.run('--version')).toBe(0);
    expect(f.stdout.text).toBe('0.1.0\n');
  });
});
