// The command tree is derived from the catalogue: every procedure with a CLI name has exactly
// one command, with the catalogue's description; the argument shapes come out of the
// schemas; every command documents its --json output.
import { describe, expect, it } from 'vitest';
import { Type } from '@sinclair/typebox';
import { adminProgram, virtqProgram } from '../../../protocol/index.js';
import { deriveFromSchema } from '../../../cli/derive.js';
import { allCommands } from '../../../cli/program.js';

const commands = allCommands();
const usage = (name: string, program = 'virtq'): string => {
  const c = commands.find((x) => x.name === name && x.program === program);
  if (c === undefined) throw new Error(`no command ${name}`);
  const args = c.arguments.map((a) => (a.required ? `<${a.name}>` : `[${a.name}]`));
  return [name, ...args, ...c.options.map((o) => `[${o.flags}]`)].join(' ');
};

describe('the command tree', () => {
  for (const program of [virtqProgram, adminProgram]) {
    it(`has one command per ${program.name} procedure with a CLI name, described by the catalogue`, () => {
      for (const [procName, spec] of Object.entries(program.procs)) {
        if (spec.cli === undefined) continue;
        const found = commands.filter((c) => c.procedure === procName && c.program === program.name);
        expect(found.map((c) => c.name), procName).toEqual([spec.cli]);
        expect(found[0]?.description).toBe(spec.description);
      }
    });
  }

  it('has no two commands with the same name', () => {
    const names = commands.map((c) => `${c.program} ${c.name}`);
    expect(new Set(names).size).toBe(names.length);
  });

  it('adds event for subscribeEvents', () => {
    expect(commands.find((c) => c.name === 'event')?.procedure).toBe('subscribeEvents');
  });

  it('gives the commands the issue\'s argument shapes', () => {
    expect(usage('list')).toBe('list [--active] [--inactive] [--persistent] [--transient] [--state <state>] [--all]');
    expect(usage('define')).toBe('define <file> [--from-libvirt-xml] [--lossy] [--bridge-network <bridge=network>]');
    expect(usage('convert')).toBe('convert <file> [--lossy] [--bridge-network <bridge=network>]');
    expect(usage('completion')).toBe('completion <shell>');
    expect(usage('create')).toBe('create <file> [--paused]');
    expect(usage('start')).toBe('start <name> [--paused]');
    expect(usage('shutdown')).toBe('shutdown <name> [--timeout <seconds>]');
    expect(usage('destroy')).toBe('destroy <name> [--grace <ms>]');
    expect(usage('domstate')).toBe('domstate <name> [--reason]');
    expect(usage('attach-disk')).toBe('attach-disk <name> <path> <target> [--format <format>] [--bus <bus>] [--readonly] [--shareable] [--pool <pool>] [--encrypt <secret-uuid>]');
    expect(usage('detach-disk')).toBe('detach-disk <name> <target> [--timeout <seconds>]');
    expect(usage('autostart')).toBe('autostart <name> [--disable]');
    expect(usage('qemu-monitor-command')).toBe('qemu-monitor-command <name> <command>');
    expect(usage('event')).toBe('event [name] [--loop] [--since <seq|time>] [--timeout <seconds>]');
    expect(usage('console')).toBe('console <name> [--timeout <seconds>]');
    expect(usage('limits', 'admin')).toBe('limits [--max-clients <n>] [--max-inflight <n>] [--workers <n>]');
    expect(usage('client-disconnect', 'admin')).toBe('client-disconnect <id>');
    expect(usage('log-filters', 'admin')).toBe('log-filters [filters]');
  });

  it('documents a --json output for every command but console, completion and proxy', () => {
    for (const c of commands) {
      if (c.name === 'console' || c.name === 'completion' || c.name === 'proxy') expect(c.output).toBeUndefined();
      else expect(c.output, c.name).toBeDefined();
    }
  });
});

describe('deriveFromSchema', () => {
  it('maps required fields to positionals and optional ones to options', () => {
    const d = deriveFromSchema(Type.Object({
      name: Type.String(), count: Type.Integer({ minimum: 1 }),
      fast: Type.Optional(Type.Boolean()), waitSec: Type.Optional(Type.Number()), mode: Type.Optional(Type.Union([Type.Literal('a'), Type.Literal('b')])),
    }));
    expect(d.arguments.map((a) => a.name)).toEqual(['name', 'count']);
    expect(d.options.map((o) => o.flags)).toEqual(['--fast', '--wait <seconds>', '--mode <mode>']);
    expect(d.options[2]?.choices).toEqual(['a', 'b']);
    expect(d.arguments[1]?.parse?.('3')).toBe(3);
    expect(() => d.arguments[1]?.parse?.('0')).toThrow(/at least 1/);
    expect(() => d.arguments[1]?.parse?.('1.5')).toThrow(/whole number/);
    expect(d.toArgs({ args: { name: 'x', count: 2 }, opts: { wait: 5, fast: true } })).toEqual({ name: 'x', count: 2, waitSec: 5, fast: true });
  });

  it('refuses shapes it cannot put on a command line', () => {
    expect(() => deriveFromSchema(Type.Object({ def: Type.Object({}) }))).toThrow(/adapter/);
  });
});
