// The command runner seam: the missing-tool error, the namespace wrapper, failed-command mapping.
import { describe, expect, it } from 'vitest';
import { commandError, missingTool, netnsRunner, type CommandRunner } from '../../../../drivers/network/runner.js';

describe('missingTool', () => {
  it('names each missing binary and its Debian package', () => {
    const err = missingTool(['nft', 'dnsmasq'], 'network "default" (nat)');
    expect(err.code).toBe('NOT_SUPPORTED');
    expect(err.message).toBe('network "default" (nat) needs nft (Debian package nftables), dnsmasq (Debian package dnsmasq-base), which are not installed; install with: apt-get install nftables dnsmasq-base');
    expect(err.details).toEqual({ missing: [{ binary: 'nft', package: 'nftables' }, { binary: 'dnsmasq', package: 'dnsmasq-base' }] });
  });
});

describe('netnsRunner', () => {
  it('prefixes every command with ip netns exec and keeps which() on the host', async () => {
    const calls: string[] = [];
    const inner: CommandRunner = {
      run: async (cmd, args) => { calls.push([cmd, ...args].join(' ')); return { stdout: '', stderr: '', code: 0 }; },
      spawn: async (cmd, args) => { calls.push(`spawn ${[cmd, ...args].join(' ')}`); return { pid: 1, exited: new Promise(() => undefined) }; },
      which: async (cmd) => `/usr/sbin/${cmd}`,
    };
    const r = netnsRunner(inner, 'vqt-1');
    await r.run('nft', ['list', 'tables']);
    await r.spawn('dnsmasq', ['-k'], { logFile: '/x' });
    expect(calls).toEqual(['ip netns exec vqt-1 nft list tables', 'spawn ip netns exec vqt-1 dnsmasq -k']);
    expect(await r.which('nft')).toBe('/usr/sbin/nft');
  });
});

describe('commandError', () => {
  it('maps EEXIST and EPERM texts and keeps the command in the details', () => {
    expect(commandError('creating bridge b', 'ip', ['link', 'add'], { stdout: '', stderr: 'RTNETLINK answers: File exists\n', code: 2 })).toMatchObject({
      code: 'ALREADY_EXISTS', message: 'creating bridge b failed: RTNETLINK answers: File exists', details: { command: 'ip link add', exitCode: 2 },
    });
    expect(commandError('x', 'ip', [], { stdout: '', stderr: 'RTNETLINK answers: Operation not permitted', code: 2 }).code).toBe('PERMISSION_DENIED');
    expect(commandError('x', 'nft', [], { stdout: '', stderr: '', code: 1 })).toMatchObject({ code: 'OPERATION_FAILED', message: 'x failed: exit code 1' });
  });
});
