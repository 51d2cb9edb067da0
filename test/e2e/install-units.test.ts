// scripts/install.sh's units, as systemd reads them: written by the script for a bin dir holding
// the built binaries, then checked with `systemd-analyze verify` (offline, no systemd PID 1),
// which must say nothing at all: it reports unknown keys and bad values on stderr and still exits 0.
import { execFile } from 'node:child_process';
import { mkdirSync, readdirSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DAEMON_NAMES } from '../../protocol/index.js';
import { tmpRoot, type TmpRoot } from '../helpers/tmp-root.js';

const run = promisify(execFile);
const REPO = new URL('../..', import.meta.url).pathname;
const BINARIES = ['virtq', 'virtq-shim', ...DAEMON_NAMES];

async function verify(unitDir: string): Promise<{ code: number; output: string }> {
  const files = readdirSync(unitDir).map((f) => join(unitDir, f));
  try {
    const r = await run('systemd-analyze', ['verify', ...files], { env: { ...process.env, SYSTEMD_LOG_COLOR: '0' } });
    return { code: 0, output: r.stdout + r.stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, output: e.stdout + e.stderr };
  }
}

describe('scripts/install.sh units', () => {
  let root: TmpRoot;
  beforeEach(() => {
    root = tmpRoot('vq-units-');
    mkdirSync(root.path('bin'));
    for (const b of BINARIES) symlinkSync(join(REPO, 'dist', 'bin', `${b}.js`), root.path('bin', b));
  });
  afterEach(() => { root.remove(); });

  it('writes a service and three sockets per daemon that systemd-analyze verify accepts without a word', async () => {
    const r = await run('bash', [join(REPO, 'scripts/install.sh'), '--units-only', '--no-enable', '--bin-dir', root.path('bin'), '--unit-dir', root.path('units')], { cwd: root.dir });
    expect(r.stdout).toBe(`install.sh: wrote 20 units to ${root.path('units')}\n`);
    expect(readdirSync(root.path('units')).sort()).toEqual(DAEMON_NAMES.flatMap((d) => [`${d}.service`, `${d}.socket`, `${d}-ro.socket`, `${d}-admin.socket`]).sort());
    expect(await verify(root.path('units'))).toEqual({ code: 0, output: '' });
  });

  it('is checked by a verify that does fail: units naming binaries that are not there', async () => {
    mkdirSync(root.path('empty'));
    await run(process.execPath, [join(REPO, 'dist/lib/scripts/install-units.js'), '--bin-dir', root.path('empty'), '--unit-dir', root.path('units')]);
    const r = await verify(root.path('units'));
    expect(r.code).not.toBe(0);
    expect(r.output).toContain(`Command ${root.path('empty', 'virtqemud')} is not executable`);
  });

  it('refuses to write units for a bin dir without the binaries', async () => {
    mkdirSync(root.path('empty'));
    const r = await run('bash', [join(REPO, 'scripts/install.sh'), '--units-only', '--no-enable', '--bin-dir', root.path('empty'), '--unit-dir', root.path('units')]).catch((e: { code: number; stderr: string }) => e);
    expect(r).toMatchObject({ code: 1, stderr: `install.sh: ${root.path('empty', 'virtqemud')} is missing: install the package first (or give --bin-dir)\n` });
  });
});
