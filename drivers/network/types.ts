// The network driver's data: what a network is (NetworkConfig), what a port is, what a DHCP lease
// is, and the events a daemon turns into logs and metrics. Plain data, no behaviour.

/** The three kinds of network, as libvirt's forward modes `nat`, none, and `bridge`. */
export type NetworkType = 'nat' | 'isolated' | 'bridge';

/** The IPv4 side of a `nat` or `isolated` network: the bridge's own address and the DHCP pool. */
export interface NetworkIpv4 {
  /** The bridge's (gateway's) address, dotted quad, e.g. `192.168.122.1`. */
  address: string;
  /** Prefix length of the subnet, 1–30. */
  prefix: number;
  /** The DHCP pool, inclusive; absent: dnsmasq serves DNS only. */
  dhcp?: { start: string; end: string };
}

/**
 * One network. `nat` and `isolated` networks get a bridge virtq creates, a dnsmasq for DHCP and
 * DNS on it, and (for `nat`) an nftables table of their own; a `bridge` network names an
 * existing host bridge that virtq only attaches taps to.
 * @since 0.2
 */
export interface NetworkConfig {
  /** 1–64 of letters, digits, `.`, `_`, `-`, `+`, not starting with `.` or `-` (as VM names). */
  name: string;
  uuid: string;
  type: NetworkType;
  /** The Linux bridge: at most 15 bytes of `[A-Za-z0-9_.-]`, not starting with `-` or `.`. */
  bridge: string;
  /** Required for `nat` and `isolated`, refused for `bridge`. */
  ipv4?: NetworkIpv4;
  /** DNS domain dnsmasq answers for and hands out (e.g. `vm.test`); `nat`/`isolated` only. */
  domain?: string;
}

/** Who may open a tap: an unprivileged QEMU needs the tap to be owned by its uid or gid. */
export interface TapOwner {
  uid?: number;
  gid?: number;
}

/** What a caller asks for when it creates a port. */
export interface PortRequest {
  /** The VM the port belongs to (lives as long as it does; the daemon releases it). */
  vmUuid: string;
  /** The VM's name, kept in the record: where the daemon looks for the VM's runtime state. */
  vmName?: string;
  /** The guest's MAC; absent: one is generated in 52:54:00 and returned. */
  mac?: string;
  /** Owner of the tap, for a QEMU that does not run as root. */
  owner?: TapOwner;
}

/**
 * One network port: a persistent tap attached to the network's bridge, for one VM NIC.
 * @since 0.2
 */
export interface NetworkPort {
  /** A UUID; the tap's name is derived from it. */
  id: string;
  /** The network's name. */
  network: string;
  vmUuid: string;
  vmName?: string;
  /** The guest's MAC, lowercase with colons. */
  mac: string;
  /** The tap device QEMU opens (`-netdev tap,ifname=TAP,script=no,downscript=no`). */
  tap: string;
  owner?: TapOwner;
  /** When the port was created, milliseconds since the epoch. */
  createdAt: number;
}

/**
 * One DHCP lease from dnsmasq's lease file.
 * @since 0.2
 */
export interface DhcpLease {
  mac: string;
  ip: string;
  hostname?: string;
  clientId?: string;
  /** Milliseconds since the epoch; null for an infinite lease. */
  expiresAt: number | null;
}

/** What `networkStatus` reports for one network this driver runs. */
export interface NetworkStatus {
  name: string;
  type: NetworkType;
  bridge: string;
  /** dnsmasq's pid when it runs; absent for `bridge` networks or while it is being restarted. */
  dnsmasqPid?: number;
  /** How many times dnsmasq was restarted after dying, since this driver took the network. */
  dnsmasqRestarts: number;
  ports: number;
}

/** Things a daemon logs or counts; none of them is an error of a call. */
export type NetworkEvent =
  | { kind: 'dnsmasq-exited'; network: string; pid: number; code: number | null; signal: string | null }
  | { kind: 'dnsmasq-restarted'; network: string; pid: number; restarts: number }
  | { kind: 'dnsmasq-restart-failed'; network: string; message: string; retryInMs: number }
  | { kind: 'dnsmasq-adopted'; network: string; pid: number }
  | { kind: 'port-recreated'; network: string; port: string; tap: string }
  | { kind: 'tap-leak-removed'; tap: string; alias: string };
