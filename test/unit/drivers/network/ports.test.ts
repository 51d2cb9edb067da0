// Port creation's failure paths with a scripted runner: whichever of tap and record fails, the
// other is undone, so neither a tap nor a record is left behind.
import { mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { DriverContext } from '../../../../drivers/network/context.js';
import { createPort, type PortTable } from '../../../../drivers/network/ports.js';
import type { CommandResult, CommandRunner } from '../../../../drivers/network/runner.js';
import { StateStore } from '../../../../drivers/network/state-store.js';
import type { NetworkConfig } from '../../../../drivers/network/types.js';
import { FakeClock } from '../../../helpers/fake-clock.js';
import { tmpRoot, type TmpRoot } from '../../../helpers/tmp-root.js';

const NET: NetworkConfig = { name: 'default', uuid: '8f6c2a7e-3b1d-4c5e-9a0f-1b2c3d4e5f60', type: 'bridge', bridge: 'br0' };
const VM = '11111111-2222-4333-8444-555555555555';

let root: TmpRoot;
let calls: Array<{ cmd: string; args: readonly string[]; input?: string }>;
let answer: (cmd: string, args: readonly string[], input?: string) => CommandResult;

function ctx(): DriverContext {
  const runner: CommandRunner = {
    run: async (cmd, args, opts) => {
      calls.push(opts?.input === undefined ? { cmd, args } : { cmd, args, input: opts.input });
      return answer(cmd, args, opts?.input);
    },
    spawn: async () => { throw new Error('not used'); },
    which: async (cmd) => `/usr/bin/${cmd}`,
  };
  return { runner, clock: new FakeClock(), store: new StateStore(root.path('state')), instance: 'a1b2c3d4', emit: () => undefined };
}

beforeEach(() => {
  root = tmpRoot();
  calls = [];
  answer = () => ({ stdout: '', stderr: '', code: 0 });
  mkdirSync(root.path('state', 'networks', 'default', 'ports'), { recursive: true });
});
afterEach(() => { root.remove(); });

describe('createPort', () => {
  it('creates the tap in one ip -batch, marked, with the owner, and records the port', async () => {
    const ports: PortTable = new Map();
    const port = await createPort(ctx(), NET, ports, '52:54:00:00:00:01', { vmUuid: VM.toUpperCase(), mac: '52:54:00:12:34:56', owner: { uid: 107, gid: 108 } });
    expect(port).toMatchObject({ vmUuid: VM, mac: '52:54:00:12:34:56', network: 'default', owner: { uid: 107, gid: 108 } });
    expect(calls).toHaveLength(1);
    expect(calls[0]?.args).toEqual(['-batch', '-']);
    expect(calls[0]?.input).toBe(
      `tuntap add dev ${port.tap} mode tap user 107 group 108\n` +
      `link set dev ${port.tap} address fe:54:00:12:34:56 alias virtq:a1b2c3d4:port:${NET.uuid}:${port.id} master br0 up\n`,
    );
    expect(readdirSync(root.path('state', 'networks', 'default', 'ports'))).toEqual([`${port.id}.json`]);
    expect(ports.get(port.id)).toEqual(port);
  });

  it('removes the record when the tap cannot be made', async () => {
    answer = () => ({ stdout: '', stderr: 'ioctl(TUNSETIFF): Device or resource busy\nCommand failed -:1\n', code: 1 });
    const ports: PortTable = new Map();
    await expect(createPort(ctx(), NET, ports, '52:54:00:00:00:01', { vmUuid: VM })).rejects.toMatchObject({ code: 'ALREADY_EXISTS' });
    expect(readdirSync(root.path('state', 'networks', 'default', 'ports'))).toEqual([]);
    expect(calls.map((c) => c.args[0])).toEqual(['-batch']);
    expect(ports.size).toBe(0);
  });

  it('deletes a tap made half-way (created but not attached)', async () => {
    answer = (_c, args) => (args[0] === '-batch' ? { stdout: '', stderr: 'Error: argument "nosuchbr" is wrong\nCommand failed -:2\n', code: 1 } : { stdout: '', stderr: '', code: 0 });
    await expect(createPort(ctx(), NET, new Map(), '52:54:00:00:00:01', { vmUuid: VM })).rejects.toMatchObject({ code: 'OPERATION_FAILED' });
    expect(calls.map((c) => c.args.join(' '))).toEqual(['-batch -', expect.stringMatching(/^link del dev vq-[0-9a-f]{12}$/)]);
  });

  it('deletes the tap when the record cannot be written', async () => {
    rmSync(root.path('state', 'networks', 'default', 'ports'), { recursive: true });
    writeFileSync(root.path('state', 'networks', 'default', 'ports'), 'a file where the ports dir should be');
    await expect(createPort(ctx(), NET, new Map(), '52:54:00:00:00:01', { vmUuid: VM })).rejects.toMatchObject({ code: 'OPERATION_FAILED' });
    expect(calls.map((c) => c.args.join(' '))).toEqual(['-batch -', expect.stringMatching(/^link del dev vq-/)]);
  });

  it('refuses bad VM UUIDs, owners, MACs and the bridge\'s own MAC before running anything', async () => {
    const c = ctx();
    await expect(createPort(c, NET, new Map(), '52:54:00:00:00:01', { vmUuid: 'vm1' })).rejects.toMatchObject({ code: 'INVALID_ARG' });
    await expect(createPort(c, NET, new Map(), '52:54:00:00:00:01', { vmUuid: VM, owner: { uid: -1 } })).rejects.toMatchObject({ code: 'INVALID_ARG' });
    await expect(createPort(c, NET, new Map(), '52:54:00:00:00:01', { vmUuid: VM, mac: '01:00:5e:00:00:01' })).rejects.toMatchObject({ code: 'INVALID_ARG' });
    await expect(createPort(c, NET, new Map(), '52:54:00:00:00:01', { vmUuid: VM, mac: '52:54:00:00:00:01' })).rejects.toMatchObject({ code: 'ALREADY_EXISTS' });
    expect(calls).toEqual([]);
  });
});
