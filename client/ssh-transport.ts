// The ssh transport (libvirt's virt-ssh-helper model): run the system `ssh` to HOST with
// `virtq proxy URI` as the remote command, wait for the proxy's banner, then speak the wire
// protocol over ssh's stdio. No port is opened on the far host; its identity is the ssh user.
// Failures before the banner become typed errors carrying the tail of ssh's stderr.
import { spawn as nodeSpawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { Duplex } from 'node:stream';
import { RpcClient, VirtqError, type ByteChannel, type Clock, type SshTarget } from '../protocol/index.js';
import { parseBanner } from './proxy-banner.js';

/** How the ssh process is started (node's `spawn` by default; injected for tests of the failure paths). */
export type SshSpawn = (command: string, args: readonly string[], opts: SpawnOptions) => ChildProcess;

/** Options of an ssh connection. */
export interface SshDialOptions {
  clock: Clock;
  /** Deadline of each call that sets none, and of the ssh handshake, in ms. */
  timeoutMs: number;
  /** Environment of the ssh process (PATH finds `ssh`; SSH_AUTH_SOCK an agent). */
  env: NodeJS.ProcessEnv;
  /** Dial the far daemon's admin socket instead of its API socket. */
  admin?: boolean;
  /** The local ssh binary (default `ssh` on PATH). */
  sshCommand?: string;
  spawn?: SshSpawn;
}

/** The longest stderr tail quoted in an error, and the most stdout read while looking for the banner. */
const STDERR_TAIL_BYTES = 2048;
const MAX_BANNER_SEARCH_BYTES = 64 * 1024;

/** Quotes one word for the far side's POSIX shell (ssh sends the command line as one string). */
export function shellQuote(word: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}

/** The arguments of `ssh` for `target`: batch mode, the key, host key checking, then the proxy command. */
export function sshArgs(target: SshTarget, opts: { admin?: boolean; connectTimeoutS?: number } = {}): string[] {
  const args = ['-T', '-e', 'none', '-o', 'BatchMode=yes', '-o', `ConnectTimeout=${opts.connectTimeoutS ?? 30}`];
  if (target.port !== undefined) args.push('-p', String(target.port));
  if (target.user !== undefined) args.push('-l', target.user);
  if (target.keyfile !== undefined) args.push('-i', target.keyfile, '-o', 'IdentitiesOnly=yes');
  if (target.knownHosts !== undefined) args.push('-o', `UserKnownHostsFile=${target.knownHosts}`);
  // libvirt's no_verify: a new host key is accepted (and remembered); a changed one is still refused.
  if (target.noVerify) args.push('-o', 'StrictHostKeyChecking=accept-new');
  const remote = [target.command, 'proxy', ...(opts.admin === true ? ['--admin'] : []), target.remoteUri];
  args.push('--', target.host, remote.map(shellQuote).join(' '));
  return args;
}

/** The typed error for an ssh that exited before the proxy's banner: what failed, and ssh's last words. */
export function sshFailure(target: SshTarget, exit: { code: number | null; signal: string | null }, stderr: string): VirtqError {
  const tail = stderr.trim().split('\n').filter((l) => l.trim() !== '' && !l.startsWith('@')).slice(-2).join('; ').slice(-STDERR_TAIL_BYTES);
  const said = tail === '' ? `ssh exited with ${exit.code ?? exit.signal}` : `ssh: ${tail}`;
  const details = { host: target.host, exitCode: exit.code, stderr: tail };
  const at = `${target.user === undefined ? '' : `${target.user}@`}${target.host}${target.port === undefined ? '' : `:${target.port}`}`;
  if (/Permission denied \(/.test(stderr) || /Too many authentication failures/.test(stderr)) {
    return new VirtqError('PERMISSION_DENIED', `ssh to ${at} refused the key (${said}); check ?keyfile= and the far side's authorized_keys`, { details });
  }
  if (/REMOTE HOST IDENTIFICATION HAS CHANGED|Host key verification failed|host key .* not verified/i.test(stderr)) {
    return new VirtqError('PERMISSION_DENIED', `the host key of ${at} does not match the known one (${said}); check ?known_hosts=, or add the key with ?no_verify=1 if the host is new`, { details });
  }
  if (exit.code === 127 || /command not found|No such file or directory/.test(stderr)) {
    return new VirtqError('NO_CONNECT', `virtq is not installed on ${at} ("${target.command}" was not found: ${said}); install it there or name it with ?command=/path/to/virtq`, { details });
  }
  return new VirtqError('NO_CONNECT', `cannot reach ${at} over ssh (${said})`, { details });
}

/** ssh's stdout and stdin as one duplex; destroying it ends the ssh process. */
class SshChannel extends Duplex {
  constructor(private readonly child: ChildProcess, head: Buffer) {
    super({ allowHalfOpen: false });
    const out = child.stdout as NodeJS.ReadableStream & { pause(): void; resume(): void };
    if (head.length > 0) this.push(head);
    out.on('data', (chunk: Buffer) => { if (!this.push(chunk)) out.pause(); });
    out.on('end', () => this.push(null));
    child.stdin?.on('error', (err) => this.destroy(err));
  }

  override _read(): void {
    this.child.stdout?.resume();
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, done: (err?: Error | null) => void): void {
    this.send(chunk, done);
  }

  // Frames written in one tick (the connection corks) go to ssh as one write.
  override _writev(chunks: Array<{ chunk: Buffer }>, done: (err?: Error | null) => void): void {
    this.send(Buffer.concat(chunks.map((c) => c.chunk)), done);
  }

  private send(chunk: Buffer, done: (err?: Error | null) => void): void {
    const stdin = this.child.stdin;
    if (stdin === null || stdin.destroyed) { done(new Error('ssh has exited')); return; }
    if (stdin.write(chunk)) done();
    else stdin.once('drain', () => done());
  }

  override _final(done: (err?: Error | null) => void): void {
    this.child.stdin?.end(() => done());
  }

  override _destroy(err: Error | null, done: (err?: Error | null) => void): void {
    this.child.stdin?.destroy();
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGTERM');
    done(err);
  }
}

/** Starts ssh and resolves once the far side's proxy reports it is connected to the daemon's socket. */
export function openSshChannel(target: SshTarget, opts: SshDialOptions): Promise<ByteChannel> {
  const spawn = opts.spawn ?? nodeSpawn;
  const args = sshArgs(target, { ...(opts.admin === undefined ? {} : { admin: opts.admin }), connectTimeoutS: Math.max(1, Math.ceil(Math.min(opts.timeoutMs, 30_000) / 1000)) });
  return new Promise<ByteChannel>((resolve, reject) => {
    const child = spawn(opts.sshCommand ?? 'ssh', args, { stdio: ['pipe', 'pipe', 'pipe'], env: opts.env });
    let stderr = '';
    let seen = Buffer.alloc(0);
    let settled = false;
    const timer = opts.clock.setTimeout(() => fail(new VirtqError('TIMEOUT', `ssh to ${target.host} gave no answer from virtq proxy within ${opts.timeoutMs} ms${stderr === '' ? '' : ` (ssh: ${stderr.trim().slice(-STDERR_TAIL_BYTES)})`}`)), opts.timeoutMs);
    const fail = (err: VirtqError): void => {
      if (settled) return;
      settled = true;
      timer.dispose();
      child.stdout?.off('data', onData);
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      reject(err);
    };
    const onData = (chunk: Buffer): void => {
      seen = Buffer.concat([seen, chunk]);
      for (let nl = seen.indexOf(10); nl >= 0 && !settled; nl = seen.indexOf(10)) {
        const banner = parseBanner(seen.subarray(0, nl).toString('utf8'));
        seen = seen.subarray(nl + 1);
        if (banner === undefined) continue;
        if (!banner.ok) { fail(new VirtqError(banner.error.code, `${target.host}: ${banner.error.message}`, { details: { host: target.host } })); return; }
        settled = true;
        timer.dispose();
        child.stdout?.off('data', onData);
        child.stderr?.removeAllListeners('data');
        child.stderr?.resume();
        resolve(new SshChannel(child, seen));
        return;
      }
      if (seen.length > MAX_BANNER_SEARCH_BYTES) fail(new VirtqError('NO_CONNECT', `${target.host}: no virtq proxy banner in the first ${MAX_BANNER_SEARCH_BYTES} bytes from ssh (is "${target.command}" virtq?)`));
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', (d: Buffer) => { stderr = (stderr + d.toString('utf8')).slice(-4 * STDERR_TAIL_BYTES); });
    child.once('error', (err: NodeJS.ErrnoException) => {
      const why = err.code === 'ENOENT' ? `${opts.sshCommand ?? 'ssh'} is not installed (or not on PATH); install openssh-client` : err.message;
      fail(new VirtqError('NO_CONNECT', `cannot run ssh for ${target.uri}: ${why}`, { cause: err }));
    });
    child.once('close', (code, signal) => fail(sshFailure(target, { code, signal }, stderr)));
  });
}

/** Opens an RPC connection to the daemon `target` names, through ssh. */
export async function dialSsh(target: SshTarget, opts: SshDialOptions): Promise<RpcClient> {
  const channel = await openSshChannel(target, opts);
  return new RpcClient(channel, { clock: opts.clock, defaultTimeoutMs: opts.timeoutMs }, target.uri);
}
