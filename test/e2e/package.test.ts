// The package as a user gets it: `npm pack`, then `npm install -g` of the tarball into a
// temporary prefix (runtime dependencies from npm's cache when it has them: --prefer-offline;
// no dev dependency, no install script), then the demo through the binaries on PATH from an
// unrelated directory: virtqemud, a VM on the idle guest, `virtq list` without -c.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DAEMON_NAMES } from '../../protocol/index.js';
import { killProcessesUnder } from '../helpers/kill-under.js';
import { idleGuest } from '../helpers/test-guest.js';
import { tmpRoot, type TmpRoot } from '../helpers/tmp-root.js';

const run = promisify(execFile);
const REPO = new URL('../..', import.meta.url).pathname;
const BINARIES = ['virtq', 'virtq-shim', ...DAEMON_NAMES];

/** The environment of a user shell: the package's bin dir and node's on PATH, nothing of this repository. */
function userEnv(prefix: string, extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, PATH: `${join(prefix, 'bin')}:${dirname(process.execPath)}:/usr/sbin:/usr/bin:/sbin:/bin`, ...extra };
  // Set by `npm test` for its children: they would point npm at this repository.
  for (const k of ['npm_config_prefix', 'npm_config_global_prefix', 'npm_config_local_prefix', 'VIRTQ_DEFAULT_URI', 'VIRTQ_SHIM', 'NODE_PATH']) {
    if (!(k in extra)) delete env[k];
  }
  return env;
}

describe('the npm package', () => {
  let tmp: TmpRoot;
  let prefix: string;
  let daemon: ChildProcess | undefined;
  const sh = (cmd: string, args: string[], extra: NodeJS.ProcessEnv = {}) => run(cmd, args, { cwd: tmp.path('elsewhere'), env: userEnv(prefix, extra), timeout: 60_000 });

  beforeAll(async () => {
    tmp = tmpRoot('vq-pkg-');
    prefix = tmp.path('prefix');
    mkdirSync(tmp.path('elsewhere'));
    mkdirSync(tmp.path('pack'));
    // The suite has just built dist/: --ignore-scripts skips prepack's build.
    const packed = await run('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', tmp.path('pack')], { cwd: REPO, env: userEnv(prefix) });
    const [{ filename }] = JSON.parse(packed.stdout) as [{ filename: string }];
    await run('npm', ['install', '-g', '--prefix', prefix, '--prefer-offline', '--ignore-scripts', '--no-audit', '--no-fund', '--loglevel=error', tmp.path('pack', filename)], { cwd: tmp.path('elsewhere'), env: userEnv(prefix), timeout: 120_000 });
  }, 180_000);

  afterAll(async () => {
    if (daemon !== undefined && daemon.exitCode === null) {
      const gone = new Promise((r) => daemon?.once('exit', r));
      daemon.kill('SIGKILL');
      await gone;
    }
    killProcessesUnder(tmp.dir);
    tmp.remove();
  });

  it('puts every binary on PATH, with the runtime dependencies only', async () => {
    expect(readdirSync(join(prefix, 'bin')).sort()).toEqual([...BINARIES].sort());
    const installed = join(prefix, 'lib', 'node_modules', 'virtq');
    const deps = readdirSync(join(installed, 'node_modules'));
    for (const dev of ['vitest', 'typescript', 'esbuild', 'fast-check']) expect(deps).not.toContain(dev);
    // Our own @types stay behind; the one @types package present is a runtime dependency of
    // protobufjs (pulled in by etcd3, the etcd fleet's client), not one of ours.
    if (deps.includes('@types')) {
      expect(readdirSync(join(installed, 'node_modules', '@types'))).toEqual(['node']);
      const protobufjs = JSON.parse(readFileSync(join(installed, 'node_modules', 'protobufjs', 'package.json'), 'utf8')) as { dependencies: Record<string, string> };
      expect(protobufjs.dependencies).toHaveProperty('@types/node');
    }
    const manifest = JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as { dependencies: Record<string, string>; optionalDependencies: Record<string, string> };
    for (const dep of Object.keys({ ...manifest.dependencies, ...manifest.optionalDependencies })) expect(deps).toContain(dep.split('/')[0]);
    expect(existsSync(join(installed, 'dist', 'lib', 'scripts', 'gen-docs.js'))).toBe(false);
    // Each binary starts from an unrelated directory (its usage on --help).
    const helps = await Promise.all(BINARIES.map((b) => sh(b, ['--help'])));
    helps.forEach((h, i) => expect(h.stdout, BINARIES[i]).toMatch(new RegExp(`^(usage: ${BINARIES[i]}|Usage: virtq)`)));
    // The library entry point loads with them too.
    const lib = await sh(process.execPath, ['--input-type=module', '-e', `import('${join(installed, 'dist/lib/client/index.js')}').then((m) => console.log(typeof m.connect, m.resolveDefaultUri({ env: {}, uid: 0 })))`]);
    expect(lib.stdout).toBe('function qemu:///system\n');
  });

  it('runs the demo through the PATH binaries: virtqemud, a VM, virtq list without -c', async () => {
    const root = tmp.path('root');
    const uri = `qemu:///system?root=${root}`;
    daemon = spawn('virtqemud', ['--root', root], { cwd: tmp.path('elsewhere'), env: userEnv(prefix), stdio: ['ignore', 'pipe', 'pipe'] });
    const ready = await new Promise<string>((resolve, reject) => {
      createInterface({ input: daemon?.stdout as NodeJS.ReadableStream }).once('line', resolve);
      daemon?.once('exit', (code) => reject(new Error(`virtqemud exited (${code})`)));
    });
    expect(JSON.parse(ready)).toMatchObject({ ok: true, socket: join(root, 'run', 'virtqemud.sock') });
    // virtqemud decodes with cbor-x's pure JS (no native probe at its start: scripts/build.mjs).
    expect(readFileSync(`/proc/${daemon.pid}/maps`, 'latin1')).not.toContain('@cbor-extract');
    // The installed launcher found the installed startup snapshot of this node binary (decision 0032).
    expect(readFileSync(`/proc/${daemon.pid}/cmdline`, 'latin1').split('\0')).toContain('--snapshot-blob');

    writeFileSync(tmp.path('elsewhere', 'idle.json'), JSON.stringify({ name: 'idle1', memoryMiB: 32, vcpus: 1, accel: 'tcg', kernel: { path: idleGuest().kernel } }));
    const viaEnv = { VIRTQ_DEFAULT_URI: uri };
    expect((await sh('virtq', ['define', 'idle.json'], viaEnv)).stdout).toBe("Domain 'idle1' defined from idle.json\n");
    expect((await sh('virtq', ['start', 'idle1'], viaEnv)).stdout).toBe("Domain 'idle1' started\n");
    expect((await sh('virtq', ['list'], viaEnv)).stdout).toMatch(/^ idle1\s+running\s/m);

    // The user's client.json names the same host: no -c, no variable.
    mkdirSync(tmp.path('home', '.config', 'virtq'), { recursive: true });
    writeFileSync(tmp.path('home', '.config', 'virtq', 'client.json'), JSON.stringify({ uri_default: uri }));
    const listed = JSON.parse((await sh('virtq', ['list', '--json'], { HOME: tmp.path('home'), XDG_CONFIG_HOME: '' })).stdout) as Array<{ name: string; state: string; shimPid?: number }>;
    expect(listed).toMatchObject([{ name: 'idle1', state: 'running' }]);

    // virtqemud ran the installed shim, not this repository's.
    const { shimPid } = JSON.parse((await sh('virtq', ['dominfo', 'idle1', '--json'], viaEnv)).stdout) as { shimPid: number };
    expect(readFileSync(`/proc/${shimPid}/cmdline`, 'latin1').split('\0')).toContain(join(prefix, 'lib', 'node_modules', 'virtq', 'dist', 'bin', 'virtq-shim.js'));
    // The shim decodes with cbor-x's pure JS too (a settled shim is smaller without the addon).
    expect(readFileSync(`/proc/${shimPid}/maps`, 'latin1')).not.toContain('@cbor-extract');
    // The one module the bundles load from node_modules: cbor-x's native decoder, with its prebuilt
    // binary, in the secondary daemons (virtqemud, the shim and the CLI do without): resolved from
    // the installed package.
    const secretd = spawn('virtsecretd', ['--root', root], { cwd: tmp.path('elsewhere'), env: userEnv(prefix), stdio: ['ignore', 'pipe', 'pipe'] });
    try {
      const secretdReady = await new Promise<string>((resolve, reject) => {
        createInterface({ input: secretd.stdout }).once('line', resolve);
        secretd.once('exit', (code) => reject(new Error(`virtsecretd exited (${code})`)));
      });
      expect(JSON.parse(secretdReady)).toMatchObject({ ok: true });
      expect(readFileSync(`/proc/${secretd.pid}/maps`, 'latin1')).toContain(join(prefix, 'lib', 'node_modules', 'virtq', 'node_modules', '@cbor-extract'));
    } finally {
      const gone = new Promise((r) => secretd.once('exit', r));
      secretd.kill('SIGKILL');
      await gone;
    }

    // With neither, root's virtq goes to the host's virtqemud at /run/virtq (another user's to the session one).
    const bare = await sh('virtq', ['list'], { HOME: tmp.path('empty-home'), XDG_CONFIG_HOME: '' }).catch((e: { code: number; stderr: string }) => e);
    const hostSocket = process.getuid?.() === 0 ? '/run/virtq/virtqemud.sock' : join(process.env['XDG_RUNTIME_DIR'] ?? `/tmp/virtq-${process.env['USER'] ?? 'user'}`, 'virtq', 'virtqemud.sock');
    if (existsSync(hostSocket)) expect(bare).toMatchObject({ stderr: '' });
    else expect(bare).toMatchObject({ code: 1, stderr: expect.stringContaining(`virtq: NO_CONNECT: cannot connect to ${hostSocket}`) });

    expect((await sh('virtq', ['destroy', 'idle1'], viaEnv)).stdout).toBe("Domain 'idle1' destroyed\n");
    const exited = new Promise((r) => daemon?.once('exit', r));
    daemon.kill('SIGTERM');
    expect(await exited).toBe(0);
  });

  it('ships install.sh, which installs the units of the installed binaries', async () => {
    const script = join(prefix, 'lib', 'node_modules', 'virtq', 'scripts', 'install.sh');
    const r = await sh('bash', [script, '--no-enable', '--bin-dir', join(prefix, 'bin'), '--unit-dir', tmp.path('units')]);
    expect(r.stdout).toBe(`install.sh: wrote 20 units to ${tmp.path('units')}\n`);
    expect(readFileSync(tmp.path('units', 'virtqemud.service'), 'utf8')).toContain(`ExecStart=${join(prefix, 'bin', 'virtqemud')} --system $VIRTQEMUD_ARGS\n`);
  });
});
