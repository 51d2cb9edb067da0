// docs/cli.md is generated from the command tree and commander's help: it must be exactly what
// scripts/gen-cli-docs.ts writes now, document every command and --json output type, and link
// only to headings that exist in docs/protocol.md.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import * as outputs from '../../../cli/json-output.js';
import { allCommands } from '../../../cli/program.js';
import { CLI_DOC_PATH, renderCliDoc } from '../../../scripts/gen-cli-docs.js';
import { repoRoot } from '../../../scripts/check-wire.js';

const read = (path: string): string => readFileSync(join(repoRoot(), path), 'utf8');
// GitHub's anchor for a heading: lower case, punctuation dropped, spaces to dashes.
const anchor = (heading: string): string => heading.replace(/^#+\s*/, '').toLowerCase().replace(/[^a-z0-9 -]/g, '').replace(/ /g, '-');

describe('docs/cli.md', () => {
  const doc = read(CLI_DOC_PATH);

  it('is what the generator writes', () => {
    expect(doc, `${CLI_DOC_PATH} is out of date: run npm run build && node dist/lib/scripts/gen-cli-docs.js`).toBe(renderCliDoc());
  });

  it('documents every command and every JSON output type', () => {
    for (const c of allCommands()) expect(doc).toContain(`### \`virtq ${c.program === 'admin' ? 'admin ' : ''}${c.name}\``);
    for (const name of Object.keys(outputs)) expect(doc).toContain(`### \`${name}\``);
  });

  it('links only to headings that exist', () => {
    const protocolAnchors = new Set(read('docs/protocol.md').split('\n').filter((l) => l.startsWith('#')).map(anchor));
    const ownAnchors = new Set(doc.split('\n').filter((l) => l.startsWith('#')).map(anchor));
    const broken = [
      ...[...doc.matchAll(/\(protocol\.md#([^)]+)\)/g)].map((m) => m[1] as string).filter((a) => !protocolAnchors.has(a)).map((a) => `protocol.md#${a}`),
      ...[...doc.matchAll(/\]\(#([^)]+)\)/g)].map((m) => m[1] as string).filter((a) => !ownAnchors.has(a)).map((a) => `#${a}`),
    ];
    expect(broken).toEqual([]);
  });
});
