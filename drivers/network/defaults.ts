// The network a daemon defines on its first run, as libvirt defines "default": NAT on its own
// bridge and subnet, chosen apart from libvirt's (virbr0, 192.168.122.0/24) so both can coexist.
import type { NetworkConfig } from './types.js';

/** The `default` network: nat on bridge `virtqbr0`, 192.168.124.1/24, DHCP .2–.254. */
export function defaultNetwork(uuid: string): NetworkConfig {
  return {
    name: 'default',
    uuid,
    type: 'nat',
    bridge: 'virtqbr0',
    ipv4: { address: '192.168.124.1', prefix: 24, dhcp: { start: '192.168.124.2', end: '192.168.124.254' } },
  };
}
