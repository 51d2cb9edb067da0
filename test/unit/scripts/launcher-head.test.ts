// The launchers' choice of a startup snapshot (scripts/launcher-head.mjs): a blob is used only for
// the node binary that built it. Node exits 14 on a blob from another binary, so every change to
// the key's inputs (the binary's mtime, its inode at the path, the path itself) must send the
// launcher to the bundle, with or without the build's markers. The `node` here is a sh script
// that prints its arguments, so what the launcher exec'd is visible.
import { execFileSync } from 'node:child_process';
import { chmodSync, copyFileSync, mkdirSync, renameSync, rmSync, statSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { tmpRoot, type TmpRoot } from '../../helpers/tmp-root.js';

interface LauncherHead {
  snapshotExec(name: string, flags: string): string;
  writeBlobMarkers(blob: string, nodePath: string): void;
}
const HEAD_URL = new URL('../../../scripts/launcher-head.mjs', import.meta.url).href;
const FAKE_NODE = '#!/bin/sh\necho "$*"\n';

describe('the launcher head picking a startup snapshot', () => {
  let tmp: TmpRoot;
  let head: LauncherHead;
  let node: string;
  let launcher: string;
  let blob: string;
  const run = (path = `${join(tmp.dir, 'nodebin')}:/usr/bin:/bin`): string =>
    execFileSync('/bin/sh', [launcher, 'arg one'], { env: { PATH: path }, encoding: 'utf8' }).trim();
  const usedBlob = (out: string): boolean => out.includes(`--snapshot-blob ${blob} -- ${join(tmp.dir, 'bin')} arg one`);
  const newNode = (at: string, mtimeS: number): void => {
    writeFileSync(`${at}.new`, `${FAKE_NODE}# another build\n`);
    chmodSync(`${at}.new`, 0o755);
    utimesSync(`${at}.new`, mtimeS, mtimeS);
    renameSync(`${at}.new`, at);
  };

  beforeEach(async () => {
    head = (await import(HEAD_URL)) as LauncherHead;
    tmp = tmpRoot('vq-head-');
    mkdirSync(tmp.path('nodebin'));
    mkdirSync(tmp.path('bin'));
    node = tmp.path('nodebin', 'node');
    writeFileSync(node, FAKE_NODE);
    chmodSync(node, 0o755);
    utimesSync(node, 1_700_000_000.25, 1_700_000_000.25);
    launcher = tmp.path('bin', 'virtqemud.js');
    writeFileSync(launcher, `d=${tmp.path('bin')}; ${head.snapshotExec('virtqemud', '--flag')}; exec node --flag "$0" "$@"\n`);
    // A key stat(1) would not give this binary: only the markers can select it.
    blob = tmp.path('bin', 'virtqemud-1-2-3.blob');
    writeFileSync(blob, '');
    head.writeBlobMarkers(blob, node);
  });
  afterEach(() => tmp.remove());

  it('uses the blob its markers give to the node that built it, by builtins alone', () => {
    expect(run()).toBe(`--flag --snapshot-blob ${blob} -- ${tmp.path('bin')} arg one`);
    const trace = execFileSync('/bin/sh', ['-c', `/bin/sh -x ${launcher} 2>&1 >/dev/null`], { env: { PATH: `${tmp.path('nodebin')}:/usr/bin:/bin` }, encoding: 'utf8' });
    expect(trace).toContain(`exec ${node} --flag --snapshot-blob ${blob}`);
    expect(trace).not.toMatch(/stat |command -v/);
  });

  it('runs the bundle once the binary is touched or overwritten in place (its mtime changed)', () => {
    utimesSync(node, 1_700_000_001, 1_700_000_001);
    expect(run()).toBe(`--flag ${launcher} arg one`);
    // Within the same second too: the markers compare nanoseconds.
    utimesSync(node, 1_700_000_000.5, 1_700_000_000.5);
    expect(run()).toBe(`--flag ${launcher} arg one`);
  });

  it('runs the bundle once another binary replaces it at the same path (an upgrade)', () => {
    newNode(node, 1_700_100_000);
    expect(run()).toBe(`--flag ${launcher} arg one`);
  });

  it('runs the bundle when the node on PATH becomes a symlink to another binary, even one with the same mtime (a Nix profile switch)', () => {
    // Built by a binary reached through a symlink: the marker names its real path.
    mkdirSync(tmp.path('store-a'));
    mkdirSync(tmp.path('store-b'));
    renameSync(node, tmp.path('store-a', 'node'));
    symlinkSync(tmp.path('store-a', 'node'), node);
    head.writeBlobMarkers(blob, node);
    expect(usedBlob(run())).toBe(true);
    newNode(tmp.path('store-b', 'node'), 1_700_000_000.25);
    rmSync(node);
    symlinkSync(tmp.path('store-b', 'node'), node);
    expect(run()).toBe(`--flag ${launcher} arg one`);
  });

  it('runs the bundle for another node binary on PATH, even one with the same mtime', () => {
    mkdirSync(tmp.path('other'));
    const other = tmp.path('other', 'node');
    copyFileSync(node, other);
    chmodSync(other, 0o755);
    execFileSync('touch', ['-r', node, other]);
    expect(run(`${tmp.path('other')}:/usr/bin:/bin`)).toBe(`--flag ${launcher} arg one`);
  });

  it('without the markers (an installed package), takes the blob named by stat(1) of the binary, and only that one', () => {
    rmSync(`${blob}.node`);
    rmSync(`${blob}.mtime`);
    expect(run()).toBe(`--flag ${launcher} arg one`);
    const st = statSync(node);
    const keyed = tmp.path('bin', `virtqemud-${st.size}-${Math.floor(st.mtimeMs / 1000)}-${st.ino}.blob`);
    writeFileSync(keyed, '');
    expect(run()).toBe(`--flag --snapshot-blob ${keyed} -- ${tmp.path('bin')} arg one`);
    // An empty marker file left without its symlink (npm pack drops symlinks) selects nothing.
    writeFileSync(`${blob}.mtime`, '');
    execFileSync('touch', ['-r', node, `${blob}.mtime`]);
    expect(run()).toBe(`--flag --snapshot-blob ${keyed} -- ${tmp.path('bin')} arg one`);
    newNode(node, 1_700_200_000);
    expect(run()).toBe(`--flag ${launcher} arg one`);
  });
});
