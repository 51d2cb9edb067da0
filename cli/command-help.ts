// The help of one command beyond commander's usage, arguments and options: its notes, its
// --json output type, the procedure it calls, and examples. Shown by `virtq help COMMAND` and
// `virtq COMMAND --help`, and written into docs/cli.md by scripts/gen-cli-docs.ts: one text.
import type { CommandSpec } from './command.js';
import { namedSchemas, plainOutputText } from './schema-text.js';

/** What to include: docs/cli.md gives the output type and the procedure as linked markdown instead. */
export interface HelpParts {
  readonly output: boolean;
}

/** The text after the options, starting with a blank line. */
export function helpAfterOptions(spec: CommandSpec, parts: HelpParts = { output: true }): string {
  const blocks: string[] = [];
  if (spec.notes !== undefined) blocks.push(spec.notes);
  if (parts.output) {
    if (spec.output === undefined) blocks.push(`Output: ${(spec.outputNote ?? '--json has no effect: the output is raw bytes.').replace(/`/g, '')}`);
    else {
      const [head, ...fields] = plainOutputText(spec.output as Readonly<Record<string, unknown>>, namedSchemas(true));
      const each = spec.jsonLines === true ? 'one line per event, each' : 'one document,';
      blocks.push([`Output with --json: ${each} ${head ?? ''}`, ...fields].join('\n'));
    }
    const proc = spec.procedure === undefined ? 'none: it calls no daemon' : `${spec.program}.${spec.procedure} (docs/protocol.md)`;
    blocks.push(`Procedure: ${proc}`);
  }
  if (spec.examples !== undefined && spec.examples.length > 0) {
    blocks.push(['Examples:', ...spec.examples.flatMap((e) => [`  virtq ${e.line}`, `      ${e.does}`])].join('\n'));
  }
  return blocks.length === 0 ? '' : `\n${blocks.join('\n\n')}\n`;
}
