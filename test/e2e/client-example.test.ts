// The complete example of docs/client.md, as a user would use it: extracted from the doc,
// type-checked against the library (strict), compiled, and run against a real virtqemud with
// the test guest. A doc example that no longer compiles or works fails here.
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import ts from 'typescript';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { repoRoot } from '../../scripts/check-wire.js';
import { DaemonHarness } from '../helpers/daemon-harness.js';
import { guestDefinition } from '../helpers/shim-harness.js';
import { tmpRoot } from '../helpers/tmp-root.js';

const repo = repoRoot();

function example(): string {
  const doc = readFileSync(join(repo, 'docs', 'client.md'), 'utf8');
  const section = doc.slice(doc.indexOf('## A complete example'));
  const m = /```ts\n([\s\S]*?)```/.exec(section);
  if (m?.[1] === undefined) throw new Error('docs/client.md has no complete example');
  return m[1];
}

function typeErrors(file: string): string[] {
  const program = ts.createProgram([file], {
    strict: true, noUncheckedIndexedAccess: true, verbatimModuleSyntax: true, noEmit: true, skipLibCheck: true,
    target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.NodeNext, moduleResolution: ts.ModuleResolutionKind.NodeNext,
    lib: ['lib.es2023.d.ts'], types: ['node'], typeRoots: [join(repo, 'node_modules', '@types')],
    paths: { virtq: [join(repo, 'client', 'index.ts')] },
  });
  return ts.getPreEmitDiagnostics(program).map((d) => ts.flattenDiagnosticMessageText(d.messageText, '\n'));
}

describe('the docs/client.md example', () => {
  let h: DaemonHarness;
  beforeAll(async () => {
    h = new DaemonHarness(tmpRoot('vqex-'));
    await h.startDaemon();
  });
  afterAll(async () => { await h.cleanup(); });

  it('type-checks against the library and tours a VM on virtqemud', async () => {
    const source = example();
    const tsFile = h.root.path('vm-tour.mts');
    writeFileSync(tsFile, source);
    expect(typeErrors(tsFile)).toEqual([]);

    const js = ts.transpileModule(source, { compilerOptions: { target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.ESNext, verbatimModuleSyntax: true } }).outputText
      .replace(/from 'virtq'/, `from '${pathToFileURL(join(repo, 'dist', 'lib', 'client', 'index.js')).href}'`);
    writeFileSync(h.root.path('vm-tour.mjs'), js);
    writeFileSync(h.root.path('tour1.json'), JSON.stringify(guestDefinition('tour1')));

    const uri = `qemu:///system?root=${h.root.dir}`;
    const proc = spawn(process.execPath, [h.root.path('vm-tour.mjs'), uri, h.root.path('tour1.json'), 'GUEST-READY'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    proc.stdout.on('data', (d: Buffer) => { out += d.toString(); });
    proc.stderr.on('data', (d: Buffer) => { err += d.toString(); });
    const code = await new Promise<number | null>((resolve) => proc.once('exit', resolve));
    expect({ code, err }).toEqual({ code: 0, err: '' });
    expect(out.split('\n')).toEqual([
      '0 VM(s) before: none',
      expect.stringMatching(/^defined tour1 [0-9a-f-]{36}$/),
      'event: started',
      expect.stringMatching(/^running: 1 vCPU, 128 MiB, QEMU pid \d+, tcg$/),
      'event: paused',
      'event: running',
      'shut down: shutoff (shutdown)',
      'undefined tour1',
      '',
    ]);
  }, 120_000);
});
