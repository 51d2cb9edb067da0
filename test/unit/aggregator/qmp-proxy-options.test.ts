// virtqemud passes the shared QMP socket's host-wide options on to every shim it starts.
import { describe, expect, it } from 'vitest';
import { virtqemudService } from '../../../aggregator/compose.js';

describe('virtqemud --no-qmp-proxy / --qmp-proxy-allow', () => {
  const service = virtqemudService('0.0.0', new URL('file:///opt/virtq/bin/virtqemud.js'));

  it('become the shim arguments, the list checked', () => {
    expect(service.parseExtra({}, {}).qmpProxyArgs).toEqual([]);
    expect(service.parseExtra({ 'no-qmp-proxy': true, 'qmp-proxy-allow': 'device_add, qom-set' }, {}).qmpProxyArgs)
      .toEqual(['--no-qmp-proxy', '--qmp-proxy-allow', 'device_add,qom-set']);
    expect(() => service.parseExtra({ 'qmp-proxy-allow': 'rm -rf' }, {})).toThrow(/not a QMP command name/);
  });
});
