// A real OpenSSH server for tests: Debian's sshd run in the foreground on a loopback port with a
// throwaway host key, a throwaway user key in its own authorized_keys and its own sshd_config, all
// under a temporary directory. stop() kills it and every session it forked, then removes the dir.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpRoot, type TmpRoot } from './tmp-root.js';
import { freePort } from './free-port.js';

/** The sshd binary (openssh-server). */
export const SSHD = '/usr/sbin/sshd';

/** A running sshd and the files a client needs to reach it. */
export interface SshServer {
  readonly port: number;
  /** The user key sshd accepts (for ?keyfile=). */
  readonly userKey: string;
  /** A known_hosts file holding the server's real host key (for ?known_hosts=). */
  readonly knownHosts: string;
  /** A known_hosts file holding another key for the same host and port (a host key mismatch). */
  readonly wrongKnownHosts: string;
  /** A key sshd does not accept. */
  readonly strangerKey: string;
  readonly dir: TmpRoot;
  stop(): Promise<void>;
}

function keygen(path: string): string {
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'virtq-test', '-f', path]);
  return readFileSync(`${path}.pub`, 'utf8').trim();
}

/** Every descendant of `pid` (children first found, deepest last), from /proc. */
function descendants(pid: number): number[] {
  const parent = new Map<number, number>();
  for (const e of readdirSync('/proc')) {
    const p = Number(e);
    if (!Number.isInteger(p)) continue;
    try {
      const stat = readFileSync(`/proc/${p}/stat`, 'latin1');
      parent.set(p, Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]));
    } catch { /* gone */ }
  }
  const out: number[] = [];
  const walk = (of: number): void => {
    for (const [child, pp] of parent) if (pp === of) { out.push(child); walk(child); }
  };
  walk(pid);
  return out;
}

/** Starts sshd on a free loopback port; resolves once it listens. */
export async function startSshServer(): Promise<SshServer> {
  // sshd's privilege separation directory is compiled in; the package's service unit makes it at boot.
  if (!existsSync('/run/sshd')) mkdirSync('/run/sshd', { mode: 0o755 });
  const dir = tmpRoot('vq-sshd-');
  const hostPub = keygen(dir.path('host_key'));
  const userPub = keygen(dir.path('user_key'));
  keygen(dir.path('stranger_key'));
  const otherHostPub = keygen(dir.path('other_host_key'));
  writeFileSync(dir.path('authorized_keys'), `${userPub}\n`, { mode: 0o600 });
  const port = await freePort();
  const hostKeyText = (pub: string): string => `[127.0.0.1]:${port} ${pub.split(' ').slice(0, 2).join(' ')}\n`;
  writeFileSync(dir.path('known_hosts'), hostKeyText(hostPub));
  writeFileSync(dir.path('wrong_known_hosts'), hostKeyText(otherHostPub));
  writeFileSync(dir.path('sshd_config'), [
    'ListenAddress 127.0.0.1', `HostKey ${dir.path('host_key')}`, `AuthorizedKeysFile ${dir.path('authorized_keys')}`,
    `PidFile ${dir.path('sshd.pid')}`, 'StrictModes no', 'UsePAM no', 'PasswordAuthentication no',
    'KbdInteractiveAuthentication no', 'PermitRootLogin prohibit-password', 'PubkeyAuthentication yes',
    'X11Forwarding no', 'AllowTcpForwarding no', 'PrintMotd no', 'LogLevel VERBOSE', 'MaxStartups 100', 'MaxSessions 100', '',
  ].join('\n'));
  const proc: ChildProcess = spawn(SSHD, ['-D', '-e', '-f', dir.path('sshd_config'), '-p', String(port)], { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  await new Promise<void>((resolve, reject) => {
    proc.stderr?.on('data', (d: Buffer) => {
      log += d.toString();
      if (log.includes('Server listening on')) resolve();
    });
    proc.once('exit', (code) => reject(new Error(`sshd exited (${code}): ${log}`)));
  });
  const exited = new Promise<void>((resolve) => { if (proc.exitCode !== null) resolve(); else proc.once('exit', () => resolve()); });
  return {
    port, dir,
    userKey: dir.path('user_key'), strangerKey: dir.path('stranger_key'),
    knownHosts: dir.path('known_hosts'), wrongKnownHosts: dir.path('wrong_known_hosts'),
    async stop() {
      const sessions = proc.pid === undefined ? [] : descendants(proc.pid);
      proc.kill('SIGKILL');
      for (const pid of sessions) try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
      await exited;
      dir.remove();
    },
  };
}
