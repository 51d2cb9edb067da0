// The ssh transport without sshd: the ssh command line (options that keep ssh non-interactive, the
// key, host key checking, the quoted remote command), the mapping of ssh's failures to typed errors,
// and the banner search over a stand-in for ssh (a node child) that prints a noisy login first.
import { spawn } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { dialSsh, openSshChannel, shellQuote, sshArgs, sshFailure } from '../../../client/ssh-transport.js';
import { errorBanner, okBanner, parseBanner } from '../../../client/proxy-banner.js';
import { VirtqError, parseUri, systemClock, type SshTarget } from '../../../protocol/index.js';

const target = (uri: string): SshTarget => parseUri(uri) as SshTarget;

/** An ssh stand-in: runs `script` in node with the ssh arguments ignored. */
const fakeSsh = (script: string) => (_cmd: string, _args: readonly string[], opts: object) => spawn(process.execPath, ['-e', script], opts);

describe('sshArgs', () => {
  it('runs ssh in batch mode with the key, the known_hosts file, the port and user, then the quoted proxy command', () => {
    const t = target("qemu+ssh://bob@h:2200/system?keyfile=/k/id&known_hosts=/k/kh&no_verify=1&root=/r/it's&command=/opt/my virtq");
    expect(sshArgs(t, { connectTimeoutS: 7 })).toEqual([
      '-T', '-e', 'none', '-o', 'BatchMode=yes', '-o', 'ConnectTimeout=7', '-p', '2200', '-l', 'bob',
      '-i', '/k/id', '-o', 'IdentitiesOnly=yes', '-o', 'UserKnownHostsFile=/k/kh', '-o', 'StrictHostKeyChecking=accept-new',
      '--', 'h', "'/opt/my virtq' proxy 'qemu:///system?root=/r/it%27s'",
    ]);
    expect(sshArgs(target('storage+ssh://h/system?readonly'), { admin: true }).slice(-1)[0]).toBe("virtq proxy --admin 'storage:///system?mode=ro'");
  });

  it('quotes anything a shell would read as syntax', () => {
    for (const word of ['a b', '$(reboot)', '`id`', 'x;y', "it's", '', 'a|b', '*']) {
      expect(shellQuote(word)).toMatch(/^'.*'$/s);
    }
    expect(shellQuote('/usr/bin/virtq')).toBe('/usr/bin/virtq');
  });
});

describe('sshFailure', () => {
  const t = target('qemu+ssh://u@h:22/system');
  it.each([
    ['u@h: Permission denied (publickey).', 255, 'PERMISSION_DENIED', 'refused the key'],
    ['Host key verification failed.', 255, 'PERMISSION_DENIED', 'host key'],
    ['@@@@@\n@ WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED! @\nHost key verification failed.', 255, 'PERMISSION_DENIED', 'does not match'],
    ['bash: line 1: virtq: command not found', 127, 'NO_CONNECT', 'virtq is not installed on u@h:22'],
    ['ssh: connect to host h port 22: Connection refused', 255, 'NO_CONNECT', 'cannot reach u@h:22'],
    ['ssh: Could not resolve hostname h: Name or service not known', 255, 'NO_CONNECT', 'Could not resolve hostname'],
    ['', 1, 'NO_CONNECT', 'ssh exited with 1'],
  ])('maps "%s" (exit %d) to %s', (stderr, code, want, words) => {
    const e = sshFailure(t, { code, signal: null }, stderr);
    expect(e).toBeInstanceOf(VirtqError);
    expect(e).toMatchObject({ code: want, message: expect.stringContaining(words) });
  });
});

describe('the proxy banner', () => {
  it('round-trips ok and errors, and ignores lines that are not banners', () => {
    expect(parseBanner(okBanner('/r/run/virtqemud.sock').trimEnd())).toEqual({ ok: true, socket: '/r/run/virtqemud.sock' });
    const b = parseBanner(errorBanner(new VirtqError('PERMISSION_DENIED', 'no')).trimEnd());
    expect(b).toMatchObject({ ok: false, error: { code: 'PERMISSION_DENIED', message: 'no' } });
    expect(parseBanner('Welcome to host h')).toBeUndefined();
    expect(parseBanner('virtq-proxy {not json')).toBeUndefined();
    expect(parseBanner('virtq-proxy 7')).toBeUndefined();
    expect(parseBanner('virtq-proxy {"ok":false,"code":"MADE_UP","message":"x"}')).toMatchObject({ ok: false, error: { code: 'NO_CONNECT' } });
  });
});

describe('openSshChannel', () => {
  const opts = { clock: systemClock(), timeoutMs: 5000, env: process.env };

  it('skips a login shell\'s output before the banner and keeps the bytes after it', async () => {
    const script = `process.stdout.write('motd line 1\\nmotd line 2\\n' + ${JSON.stringify(okBanner('/s'))} + 'AFTER'); process.stdin.pipe(process.stdout);`;
    const ch = await openSshChannel(target('qemu+ssh://h/system'), { ...opts, spawn: fakeSsh(script) });
    const got: Buffer[] = [];
    ch.on('data', (d: Buffer) => got.push(d));
    ch.write('ECHO');
    await new Promise<void>((resolve) => { const check = (): void => { if (Buffer.concat(got).toString() === 'AFTERECHO') resolve(); else setTimeout(check, 5); }; check(); });
    ch.destroy();
  });

  it('fails with the far side\'s error code from its banner', async () => {
    const script = `process.stdout.write(${JSON.stringify(errorBanner(new VirtqError('PERMISSION_DENIED', 'cannot connect to /run/virtq/virtqemud.sock: permission denied')))}); process.exit(1);`;
    await expect(openSshChannel(target('qemu+ssh://h/system'), { ...opts, spawn: fakeSsh(script) })).rejects.toMatchObject({ code: 'PERMISSION_DENIED', message: 'h: cannot connect to /run/virtq/virtqemud.sock: permission denied' });
  });

  it('fails with NO_CONNECT when something other than virtq answers, and TIMEOUT when nothing does', async () => {
    const chatty = `process.stdout.write('x'.repeat(70000)); setTimeout(() => {}, 10000);`;
    await expect(openSshChannel(target('qemu+ssh://h/system'), { ...opts, spawn: fakeSsh(chatty) })).rejects.toMatchObject({ code: 'NO_CONNECT', message: expect.stringContaining('no virtq proxy banner') });
    const silent = `setTimeout(() => {}, 10000);`;
    await expect(openSshChannel(target('qemu+ssh://h/system'), { ...opts, timeoutMs: 200, spawn: fakeSsh(silent) })).rejects.toMatchObject({ code: 'TIMEOUT' });
  });

  it('closes the RPC connection with CONNECTION_CLOSED when ssh goes after the banner', async () => {
    const script = `process.stdout.write(${JSON.stringify(okBanner('/s'))}); setTimeout(() => process.exit(0), 50);`;
    const rpc = await dialSsh(target('qemu+ssh://h/system'), { ...opts, spawn: fakeSsh(script) });
    await expect(rpc.call('virtq', 'listDomains', {})).rejects.toMatchObject({ code: 'CONNECTION_CLOSED' });
  });
});
