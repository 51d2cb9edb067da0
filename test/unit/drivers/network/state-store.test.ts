// The driver's state dir: the instance id is made once and kept; port and network records round
// trip; temp files, unreadable files and records of another network are skipped.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { StateStore } from '../../../../drivers/network/state-store.js';
import type { NetworkConfig, NetworkPort } from '../../../../drivers/network/types.js';
import { tmpRoot, type TmpRoot } from '../../../helpers/tmp-root.js';

const NET: NetworkConfig = { name: 'lan', uuid: '5b1e0c9d-2f3a-4b4c-8d5e-6f7a8b9c0d1e', type: 'bridge', bridge: 'br0' };
const PORT: NetworkPort = { id: '0123abcd-ef45-4678-9abc-def012345678', network: 'lan', vmUuid: '11111111-2222-4333-8444-555555555555', mac: '52:54:00:00:00:01', tap: 'vq-0123abcdef45', createdAt: 1 };

let root: TmpRoot;
beforeEach(() => { root = tmpRoot(); });
afterEach(() => { root.remove(); });

describe('StateStore', () => {
  it('creates the instance id once and reads it back', async () => {
    const store = new StateStore(root.dir);
    const id = await store.instanceId();
    expect(id).toMatch(/^[0-9a-f]{8}$/);
    expect(await new StateStore(root.dir).instanceId()).toBe(id);
    expect(readFileSync(root.path('instance-id'), 'utf8')).toBe(`${id}\n`);
  });

  it('round-trips network and port records and forgets a network with its ports', async () => {
    const store = new StateStore(root.dir);
    await store.prepareNetwork('lan');
    await store.saveNetwork({ config: NET, createdBridge: false, startedAt: 5 });
    await store.savePort(PORT);
    expect(await store.loadNetworks()).toEqual([{ config: NET, createdBridge: false, startedAt: 5 }]);
    expect(await store.loadPorts('lan')).toEqual([PORT]);
    await store.removePort(PORT);
    await store.removePort(PORT);
    expect(await store.loadPorts('lan')).toEqual([]);
    await store.removeNetwork('lan');
    expect(await store.loadNetworks()).toEqual([]);
  });

  it('skips temp files, unreadable files and records that do not belong where they are', async () => {
    const store = new StateStore(root.dir);
    await store.prepareNetwork('lan');
    await store.savePort(PORT);
    const dir = root.path('networks', 'lan', 'ports');
    writeFileSync(`${dir}/.x.json.1234.tmp`, '{');
    writeFileSync(`${dir}/broken.json`, '{');
    writeFileSync(`${dir}/other.json`, JSON.stringify({ ...PORT, id: 'other', network: 'elsewhere' }));
    writeFileSync(`${dir}/renamed.json`, JSON.stringify(PORT));
    mkdirSync(root.path('networks', 'ghost'), { recursive: true });
    writeFileSync(root.path('networks', 'ghost', 'network.json'), JSON.stringify({ config: { ...NET, name: 'lan' } }));
    expect(await store.loadPorts('lan')).toEqual([PORT]);
    expect(await store.loadNetworks()).toEqual([]);
  });
});
