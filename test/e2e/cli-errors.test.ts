// The built CLI's error paths that need no VM: bad definition files (JSON errors naming the
// file, schema errors naming the field), no daemon (NO_CONNECT naming the socket), an unknown
// shim, usage errors (exit 2) and help (exit 0).
import { writeFileSync } from 'node:fs';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { tmpRoot, type TmpRoot } from '../helpers/tmp-root.js';
import { expectFailure, virtq } from './virtq-cli.js';

describe('virtq CLI errors', () => {
  let root: TmpRoot;
  let uri: string;
  beforeEach(() => {
    root = tmpRoot('vqe-');
    uri = `qemu:///system?root=${root.dir}`;
  });
  afterEach(() => root.remove());

  it('names the file and the JSON error of a bad definition file', async () => {
    writeFileSync(root.path('bad.json'), '{"name": "x",\n "memoryMiB": }');
    for (const cmd of ['define', 'create']) {
      expectFailure(await virtq(['-c', uri, cmd, 'bad.json'], { cwd: root.dir }), 'INVALID_ARG', /bad\.json is not valid JSON: .*Unexpected token/);
    }
    expectFailure(await virtq(['-c', uri, 'define', 'none.json'], { cwd: root.dir }), 'INVALID_ARG', /cannot read definition file none\.json: no such file/);
  });

  it('names the offending field of an invalid definition', async () => {
    writeFileSync(root.path('inv.json'), JSON.stringify({ name: 'x', memoryMiB: 128, vcpus: 0 }));
    expectFailure(await virtq(['-c', uri, 'create', 'inv.json'], { cwd: root.dir }), 'INVALID_ARG', /inv\.json: invalid definition: \/vcpus: /);
    writeFileSync(root.path('inv2.json'), JSON.stringify({ name: '-bad', memoryMiB: 128 }));
    expectFailure(await virtq(['-c', uri, 'define', root.path('inv2.json')]), 'INVALID_ARG', /invalid definition: \/name: /);
  });

  it('says which socket it tried when no daemon runs', async () => {
    const socket = root.path('run', 'virtqemud.sock');
    for (const args of [['list'], ['dominfo', 'web1'], ['admin', 'server-info']]) {
      const r = await virtq(['-c', uri, ...args]);
      expectFailure(r, 'NO_CONNECT', /cannot connect to .*: no such socket \(is virtqemud running/);
      expect(r.stderr).toContain(args[0] === 'admin' ? root.path('run', 'virtqemud-admin.sock') : socket);
    }
    const viaDefault = await virtq(['list'], { env: { VIRTQ_DEFAULT_URI: `${uri}&mode=ro` } });
    expectFailure(viaDefault, 'NO_CONNECT', new RegExp(root.path('run', 'virtqemud-ro.sock')));
  });

  it('fails with NO_DOMAIN for a shim URI naming a VM that has no state file', async () => {
    expectFailure(await virtq(['-c', `shim:///ghost?root=${root.dir}`, 'domstate', 'ghost']), 'NO_DOMAIN', /ghost/);
  });

  it('exits 2 on usage errors, with the error on stderr', async () => {
    for (const args of [[], ['frobnicate'], ['dominfo'], ['list', '--frob'], ['shutdown', 'x', '--timeout', 'soon'], ['-c', 'nonsense', 'list'], ['admin', 'nope']]) {
      const r = await virtq(args);
      expect(r.code, `virtq ${args.join(' ')}: ${r.stderr}`).toBe(2);
      expect(r.stdout).toBe('');
      expect(r.stderr).not.toBe('');
    }
  });

  it('prints help with the catalogue descriptions and exits 0', async () => {
    const r = await virtq(['--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('Pauses the VM\'s vCPUs.');
    expect(r.stdout).toContain('qemu:///embed?root=DIR');
    const sub = await virtq(['attach-disk', '--help']);
    expect(sub.code).toBe(0);
    expect(sub.stdout).toContain('Usage: virtq attach-disk [options] <name> <path> <target>');
    expect((await virtq(['--version'])).stdout).toBe('0.1.0\n');
  });
});
