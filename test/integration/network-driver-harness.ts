// Test plumbing for the network driver's integration tests: a private network namespace per test
// (every command runs inside it; its processes are killed by pid and it is deleted afterwards, so
// the host's interfaces and ruleset are never touched), and busybox's udhcpc as a DHCP client.
import { execFileSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { hostRunner } from '../../drivers/network/host-runner.js';
import { netnsRunner, type CommandResult, type CommandRunner } from '../../drivers/network/runner.js';

/** A network namespace owned by one test. */
export interface TestNetns {
  name: string;
  /** Runs commands inside the namespace. */
  runner: CommandRunner;
  /** Runs `cmd` inside the namespace; throws on failure. */
  sh(cmd: string, args: readonly string[]): Promise<string>;
  /** Kills every process in the namespace (by pid) and deletes it, with all its interfaces. */
  remove(): Promise<void>;
}

function pidsIn(ns: string): number[] {
  try {
    return execFileSync('ip', ['netns', 'pids', ns], { encoding: 'utf8' }).split('\n').filter((l) => l !== '').map(Number);
  } catch {
    return [];
  }
}

/** Creates `vqt-<random>` with its loopback up. `env` is the runner's environment (PATH, for a missing tool). */
export function createNetns(env?: NodeJS.ProcessEnv): TestNetns {
  const name = `vqt-${randomBytes(4).toString('hex')}`;
  execFileSync('ip', ['netns', 'add', name]);
  execFileSync('ip', ['-n', name, 'link', 'set', 'lo', 'up']);
  const runner = netnsRunner(hostRunner(env === undefined ? {} : { env }), name);
  return {
    name,
    runner,
    async sh(cmd, args) {
      const res: CommandResult = await runner.run(cmd, args);
      if (res.code !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${String(res.code)}): ${res.stderr}`);
      return res.stdout;
    },
    async remove() {
      for (let round = 0; round < 50; round++) {
        const pids = pidsIn(name);
        if (pids.length === 0) break;
        for (const pid of pids) {
          try {
            process.kill(pid, 'SIGKILL');
          } catch {
            // Gone already.
          }
        }
        await new Promise((r) => setTimeout(r, 20));
      }
      execFileSync('ip', ['netns', 'del', name]);
    },
  };
}

/** True when namespace `name` still exists. */
export function netnsExists(name: string): boolean {
  return execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' }).split('\n').some((l) => l.split(' ')[0] === name);
}

/**
 * A static busybox (for udhcpc): `$VIRTQ_BUSYBOX`, else a cached copy under
 * `~/.cache/virtq/busybox-static`, else Debian's busybox-static unpacked there (never installed).
 */
export function busybox(): string {
  const fromEnv = process.env['VIRTQ_BUSYBOX'];
  if (fromEnv !== undefined && fromEnv !== '') return fromEnv;
  const cache = join(process.env['XDG_CACHE_HOME'] || join(homedir(), '.cache'), 'virtq', 'busybox-static');
  const bin = join(cache, 'busybox');
  if (existsSync(bin)) return bin;
  const work = mkdtempSync(join(tmpdir(), 'vq-busybox-'));
  try {
    execFileSync('apt-get', ['download', '-o', 'APT::Sandbox::User=root', 'busybox-static'], { cwd: work, stdio: 'ignore' });
    const deb = readdirSync(work).find((f) => f.startsWith('busybox-static_') && f.endsWith('.deb'));
    if (deb === undefined) throw new Error('apt-get download busybox-static left no .deb');
    execFileSync('dpkg-deb', ['-x', join(work, deb), join(work, 'x')]);
    mkdirSync(cache, { recursive: true });
    const tmp = `${bin}.${process.pid}.tmp`;
    copyFileSync(join(work, 'x', 'bin', 'busybox'), tmp);
    chmodSync(tmp, 0o755);
    renameSync(tmp, bin);
    return bin;
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
