// A shim's ports over a fake virtnetworkd: a port per network interface before QEMU starts (all
// or none: those taken are given back when one fails), waiting for a network not started yet
// until the deadline, and giving ports back without failing on ports already gone.
import { describe, expect, it } from 'vitest';
import { VirtqError, silentLogger, type ResolvedDefinition } from '../../../protocol/index.js';
import { NicPorts, type PortLookup } from '../../../shim/vm/nic-ports.js';
import { FakeClock } from '../../helpers/fake-clock.js';

const UUID = '11111111-2222-4333-8444-555555555555';
const def = (interfaces: ResolvedDefinition['interfaces']): ResolvedDefinition => ({
  name: 'web1', uuid: UUID, memoryMiB: 64, vcpus: 1, machine: 'pc', disks: [], interfaces, onPoweroff: 'destroy', onReboot: 'restart', onCrash: 'preserve',
});

function fake(behaviour: (network: string) => 'ok' | 'inactive' | 'missing' = () => 'ok') {
  const created: string[] = [];
  const deleted: string[] = [];
  const lookup: PortLookup = {
    createPort: async (req) => {
      const b = behaviour(req.network);
      if (b === 'inactive') throw new VirtqError('NO_NETWORK', `network "${req.network}" is not active`, { details: { state: 'inactive' } });
      if (b === 'missing') throw new VirtqError('NO_NETWORK', `no network named "${req.network}"`, { details: { state: 'undefined' } });
      const id = `port-${req.network}`;
      created.push(id);
      return { id, tap: `vq-${req.network}`, mac: req.mac ?? '52:54:00:00:00:99', reused: false };
    },
    deletePort: async (network, id) => {
      if (id === 'gone') throw new VirtqError('NO_NETWORK_PORT', 'no such port');
      deleted.push(`${network}/${id}`);
    },
    addresses: async (network) => (network === 'default' ? [{ ip: '192.168.122.7', prefix: 24 }] : []),
  };
  return { lookup, created, deleted };
}

const ports = (lookup: PortLookup | undefined, clock = new FakeClock(), waitMs = 5000) => new NicPorts({ vm: 'web1', uuid: UUID, clock, log: silentLogger(), lookup, waitMs });

describe('NicPorts', () => {
  it('gives each network interface a port, keeping its MAC and leaving other interfaces as they are', async () => {
    const f = fake();
    const out = await ports(f.lookup).forStart(def([{ type: 'network', network: 'default', mac: '52:54:00:00:00:01' }, { type: 'user' }]));
    expect(out).toEqual([{ type: 'network', network: 'default', mac: '52:54:00:00:00:01', port: { id: 'port-default', tap: 'vq-default' } }, { type: 'user' }]);
    expect(await ports(f.lookup).addresses(def(out))).toEqual([{ name: 'vq-default', mac: '52:54:00:00:00:01', network: 'default', addresses: [{ type: 'ipv4', address: '192.168.122.7', prefix: 24 }] }]);
  });

  it('gives back the ports it took when a later interface cannot have one', async () => {
    const f = fake((n) => (n === 'nope' ? 'missing' : 'ok'));
    await expect(ports(f.lookup).forStart(def([{ type: 'network', network: 'default', mac: '52:54:00:00:00:01' }, { type: 'network', network: 'nope', mac: '52:54:00:00:00:02' }])))
      .rejects.toMatchObject({ code: 'NO_NETWORK', message: expect.stringContaining('VM "web1" on network "nope"') });
    expect(f.deleted).toEqual(['default/port-default']);
  });

  it('waits for a network that is defined but not started, until the deadline', async () => {
    let active = false;
    const f = fake(() => (active ? 'ok' : 'inactive'));
    const clock = new FakeClock();
    const p = ports(f.lookup, clock, 5000).create('default');
    await clock.advance(1000);
    active = true;
    await clock.advance(1000);
    await expect(p).resolves.toMatchObject({ iface: { port: { id: 'port-default' } }, reused: false });

    const never = ports(fake(() => 'inactive').lookup, clock, 2000).create('default');
    const settled = expect(never).rejects.toMatchObject({ code: 'NO_NETWORK', message: expect.stringContaining('waited 2 s') });
    await clock.advance(3000);
    await settled;
  });

  it('gives ports back, skipping ports already gone, and refuses without virtnetworkd', async () => {
    const f = fake();
    await ports(f.lookup).release([{ type: 'network', network: 'default', mac: 'x', port: { id: 'gone', tap: 't' } }, { type: 'network', network: 'lab', mac: 'y', port: { id: 'p2', tap: 't2' } }, { type: 'user' }]);
    expect(f.deleted).toEqual(['lab/p2']);
    await expect(ports(undefined).create('default')).rejects.toMatchObject({ code: 'NOT_SUPPORTED' });
  });
});
