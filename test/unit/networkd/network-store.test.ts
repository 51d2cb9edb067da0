// virtnetworkd's network store over a fake driver and a temporary root: the default network is
// defined (not started) on the first run only; definitions are checked against each other and
// replace only inactive networks, keeping UUID and bridge; a load starts autostart networks and
// keeps a network that runs without a definition file.
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { rootLayout, silentLogger } from '../../../protocol/index.js';
import type { NetworkDriver } from '../../../drivers/network/network-driver.js';
import type { NetworkConfig } from '../../../drivers/network/types.js';
import { NetworkStore } from '../../../networkd/network-store.js';
import { tmpRoot, type TmpRoot } from '../../helpers/tmp-root.js';

let root: TmpRoot;
beforeEach(() => { root = tmpRoot('vq-nstore-'); });
afterEach(() => root.remove());

function fakeDriver(running: NetworkConfig[] = []) {
  const active = new Map(running.map((c) => [c.name, c]));
  const started: string[] = [];
  const driver = {
    recover: async () => [...active.keys()].map((name) => ({ name })),
    activeNetworks: () => [...active.values()],
    startNetwork: async (c: NetworkConfig) => { active.set(c.name, c); started.push(c.name); return {}; },
    stopNetwork: async (c: NetworkConfig) => { active.delete(c.name); },
  } as unknown as NetworkDriver;
  return { driver, started };
}

const view = async () => ({ subnets: [], links: new Set<string>() });
const open = async (driver: NetworkDriver) => {
  const events: string[] = [];
  const store = new NetworkStore(rootLayout(root.dir), driver, silentLogger(), { changed: (k, n) => events.push(`${k} ${n}`) });
  await store.load(view);
  return { store, events };
};

describe('NetworkStore', () => {
  it('defines the default network, inactive, on the first run only', async () => {
    const { store } = await open(fakeDriver().driver);
    expect(store.all().map((e) => [e.config.name, e.config.bridge, e.config.ipv4?.address, e.autostart, store.isActive(e.config.name)])).toEqual([['default', 'virtqbr0', '192.168.122.1', false, false]]);
    await store.undefine('default');
    expect((await open(fakeDriver().driver)).store.all()).toEqual([]);
    rmSync(join(root.dir, 'etc', 'network', '.initialized'));
    expect((await open(fakeDriver().driver)).store.all().map((e) => e.config.name)).toEqual(['default']);
  });

  it('checks definitions against each other, replaces inactive ones keeping UUID and bridge, and refuses active ones', async () => {
    const { driver } = fakeDriver();
    const { store, events } = await open(driver);
    await expect(store.define({ name: 'lab', type: 'isolated', ipv4: { address: '192.168.122.200', prefix: 24 } })).rejects.toMatchObject({ code: 'IN_USE' });
    await expect(store.define({ name: 'br', type: 'bridge' })).rejects.toMatchObject({ code: 'INVALID_ARG', message: expect.stringContaining('bridge') });
    const lab = await store.define({ name: 'lab', type: 'isolated', ipv4: { address: '10.5.0.1', prefix: 24 } });
    expect(lab.config.bridge).toBe('virtqbr1');
    const again = await store.define({ name: 'lab', type: 'nat', ipv4: { address: '10.6.0.1', prefix: 24 } });
    expect([again.config.uuid, again.config.bridge, again.config.type]).toEqual([lab.config.uuid, 'virtqbr1', 'nat']);
    await store.start('lab');
    await expect(store.define({ name: 'lab', type: 'nat', ipv4: { address: '10.7.0.1', prefix: 24 } })).rejects.toMatchObject({ code: 'OPERATION_INVALID' });
    await expect(store.undefine('lab')).rejects.toMatchObject({ code: 'OPERATION_INVALID' });
    expect(() => store.get('nope')).toThrow(expect.objectContaining({ code: 'NO_NETWORK', details: { network: 'nope', state: 'undefined' } }));
    expect(() => store.active('default')).toThrow(expect.objectContaining({ code: 'NO_NETWORK', details: { network: 'default', state: 'inactive' } }));
    expect(JSON.parse(readFileSync(join(root.dir, 'etc', 'network', 'lab.json'), 'utf8'))).toMatchObject({ format: 1, config: { name: 'lab', type: 'nat' }, autostart: false });
    expect(events).toEqual(['defined lab', 'defined lab', 'started lab']);
  });

  it('starts autostart networks at load and keeps one that runs without its definition file', async () => {
    const first = fakeDriver();
    const { store } = await open(first.driver);
    await store.setAutostart('default', true);
    const orphan: NetworkConfig = { name: 'gone', uuid: '0d8e1c2b-4a5f-4e6d-8b7a-9c0d1e2f3a4b', type: 'isolated', bridge: 'vqbr9', ipv4: { address: '10.9.0.1', prefix: 24 } };
    const second = fakeDriver([orphan]);
    const { store: reloaded } = await open(second.driver);
    expect(second.started).toEqual(['default']);
    expect(reloaded.all().map((e) => [e.config.name, reloaded.isActive(e.config.name)])).toEqual([['default', true], ['gone', true]]);
  });
});
