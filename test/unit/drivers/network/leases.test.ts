// dnsmasq's lease file: IPv4 leases parsed, IPv6 and malformed lines skipped, expired ones dropped.
import { writeFileSync } from 'node:fs';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parseLeases, readLeases } from '../../../../drivers/network/leases.js';
import { tmpRoot, type TmpRoot } from '../../../helpers/tmp-root.js';

const FILE = [
  '1700003600 52:54:00:12:34:56 192.168.122.45 web1 01:52:54:00:12:34:56',
  '0 52:54:00:AA:BB:CC 192.168.122.46 * *',
  'duid 00:01:00:01:2c:8a:1b:2e:52:54:00:11:22:33',
  '1700003600 1234567 fd00::5 host6 00:01:00:01',
  'garbage line',
  '17000x3600 52:54:00:12:34:57 192.168.122.47 * *',
  '',
].join('\n');

describe('parseLeases', () => {
  it('parses IPv4 leases, lowercases MACs and maps * and 0', () => {
    expect(parseLeases(FILE)).toEqual([
      { mac: '52:54:00:12:34:56', ip: '192.168.122.45', hostname: 'web1', clientId: '01:52:54:00:12:34:56', expiresAt: 1_700_003_600_000 },
      { mac: '52:54:00:aa:bb:cc', ip: '192.168.122.46', expiresAt: null },
    ]);
  });
});

describe('readLeases', () => {
  let root: TmpRoot;
  beforeEach(() => { root = tmpRoot(); });
  afterEach(() => { root.remove(); });

  it('drops expired leases and keeps infinite ones', async () => {
    writeFileSync(root.path('leases'), FILE);
    expect((await readLeases(root.path('leases'), 1_700_003_600_000)).map((l) => l.ip)).toEqual(['192.168.122.46']);
    expect(await readLeases(root.path('leases'), 1_700_000_000_000)).toHaveLength(2);
  });

  it('reads no file as no leases', async () => {
    expect(await readLeases(root.path('none'), 0)).toEqual([]);
  });
});
