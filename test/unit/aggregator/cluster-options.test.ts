// virtqemud's --cluster options as parsed (aggregator/cluster/cluster-options.ts): --cluster-sync-period.
import { describe, expect, it } from 'vitest';
import { parseClusterOptions } from '../../../aggregator/cluster/cluster-options.js';

const uri = 'etcd://127.0.0.1:2379/virtq';

describe('--cluster-sync-period', () => {
  it('is seconds, whole, at least 1, and absent unless given (the membership then keeps its 10 s)', () => {
    expect(parseClusterOptions({ cluster: uri, 'cluster-host': 'h1', 'cluster-sync-period': '2' })).toMatchObject({ syncPeriodSec: 2 });
    expect(parseClusterOptions({ cluster: uri, 'cluster-host': 'h1' })).not.toHaveProperty('syncPeriodSec');
    for (const bad of ['0', '1.5', 'x']) {
      expect(() => parseClusterOptions({ cluster: uri, 'cluster-host': 'h1', 'cluster-sync-period': bad })).toThrow(/cluster-sync-period/);
    }
  });

  it('is refused without --cluster', () => {
    expect(() => parseClusterOptions({ 'cluster-sync-period': '2' })).toThrow(/need --cluster/);
  });
});
