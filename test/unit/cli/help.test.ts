// `virtq help COMMAND` shows the full text (the same as docs/cli.md): every command has examples,
// and every example parses against the command tree to the command it illustrates, so none can
// outlive a rename or a removed option.
import { describe, expect, it } from 'vitest';
import type { CommandSpec } from '../../../cli/command.js';
import { helpAfterOptions } from '../../../cli/command-help.js';
import { allCommands, buildProgram } from '../../../cli/program.js';
import { EXAMPLES } from '../../../cli/examples.js';

// The words of an example line: double-quoted words kept whole, shell redirections dropped.
function words(line: string): string[] {
  const out: string[] = [];
  const re = /"([^"]*)"|(\S+)/g;
  for (let m = re.exec(line); m !== null; m = re.exec(line)) out.push(m[1] ?? m[2] ?? '');
  const redirect = out.findIndex((w) => w === '>' || w === '<');
  return redirect === -1 ? out : out.slice(0, redirect);
}

async function parse(line: string): Promise<CommandSpec | undefined> {
  let ran: CommandSpec | undefined;
  const sink = { write: () => undefined, isTTY: false };
  const program = buildProgram({ env: {}, stdout: sink, stderr: sink, width: 100, execute: async (spec) => { ran = spec; } });
  await program.parseAsync(words(line), { from: 'user' });
  return ran;
}

describe('virtq help COMMAND', () => {
  const commands = allCommands();
  const key = (c: CommandSpec): string => (c.program === 'admin' ? `admin ${c.name}` : c.name);

  it('has examples for every command, and none for a command that does not exist', () => {
    expect(commands.filter((c) => (c.examples ?? []).length === 0).map(key)).toEqual([]);
    expect(Object.keys(EXAMPLES).filter((k) => !commands.some((c) => key(c) === k))).toEqual([]);
  });

  it('has examples that parse to their own command', async () => {
    for (const c of commands) {
      for (const e of c.examples ?? []) expect((await parse(e.line))?.name, e.line).toBe(c.name);
    }
  });

  it('gives the notes, the --json output type with its fields, the procedure and the examples', () => {
    const dominfo = commands.find((c) => c.name === 'dominfo') as CommandSpec;
    const text = helpAfterOptions(dominfo);
    expect(text).toContain('Output with --json: one document, DomainInfo\n  name: string\n  uuid: string\n  state: "starting" | "running"');
    expect(text).toContain('Procedure: virtq.getInfo (docs/protocol.md)');
    expect(text).toContain('Examples:\n  virtq dominfo web1\n      state, vCPUs, memory, CPU time, QEMU pid of web1');
    const completion = helpAfterOptions(commands.find((c) => c.name === 'completion') as CommandSpec);
    expect(completion).toContain('Output: --json has no effect: it prints a shell script.');
    expect(completion).toContain('Procedure: none: it calls no daemon');
  });
});
