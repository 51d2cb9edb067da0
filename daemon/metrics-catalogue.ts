// Every metric virtq exports, declared once: the shim and virtqemud create their prom-client
// metrics from this table and docs/metrics.md is generated from it. Names follow
// virtq_<component>_<what>_<unit>; label values come only from bounded sets.

/** One metric's declaration. */
export interface MetricSpec {
  readonly name: string;
  readonly type: 'gauge' | 'counter' | 'histogram';
  readonly help: string;
  /** Labels beyond the per-VM `domain` and `uuid` a shim adds to everything. */
  readonly labels: readonly string[];
  readonly exportedBy: 'shim' | 'virtqemud' | 'both' | 'virtstoraged' | 'virtsecretd' | 'virtnetworkd' | 'virtnodedevd';
}

const spec = (s: MetricSpec): MetricSpec => s;

/** The metric table. */
export const metricCatalogue = {
  domainState: spec({ name: 'virtq_domain_state', type: 'gauge', labels: ['state'], exportedBy: 'shim', help: 'The VM\'s lifecycle state: 1 for the current state, 0 for the others.' }),
  domainVcpus: spec({ name: 'virtq_domain_vcpus', type: 'gauge', labels: [], exportedBy: 'shim', help: 'Virtual CPUs of the VM.' }),
  domainMemory: spec({ name: 'virtq_domain_memory_bytes', type: 'gauge', labels: [], exportedBy: 'shim', help: 'Memory configured for the VM.' }),
  domainCpu: spec({ name: 'virtq_domain_cpu_seconds_total', type: 'counter', labels: [], exportedBy: 'shim', help: 'CPU time used by the VM\'s QEMU process (user + system).' }),
  domainRss: spec({ name: 'virtq_domain_qemu_resident_bytes', type: 'gauge', labels: [], exportedBy: 'shim', help: 'Resident set size of the VM\'s QEMU process.' }),
  domainUptime: spec({ name: 'virtq_domain_uptime_seconds', type: 'gauge', labels: [], exportedBy: 'shim', help: 'Seconds since the VM\'s QEMU process started.' }),
  domainTainted: spec({ name: 'virtq_domain_tainted', type: 'gauge', labels: [], exportedBy: 'shim', help: '1 once raw QMP passthrough has been used on the VM.' }),
  blockReadBytes: spec({ name: 'virtq_domain_block_read_bytes_total', type: 'counter', labels: ['disk'], exportedBy: 'shim', help: 'Bytes read by the guest from each disk.' }),
  blockWriteBytes: spec({ name: 'virtq_domain_block_write_bytes_total', type: 'counter', labels: ['disk'], exportedBy: 'shim', help: 'Bytes written by the guest to each disk.' }),
  blockReadOps: spec({ name: 'virtq_domain_block_read_ops_total', type: 'counter', labels: ['disk'], exportedBy: 'shim', help: 'Read operations per disk.' }),
  blockWriteOps: spec({ name: 'virtq_domain_block_write_ops_total', type: 'counter', labels: ['disk'], exportedBy: 'shim', help: 'Write operations per disk.' }),
  qmpDuration: spec({ name: 'virtq_qmp_command_duration_seconds', type: 'histogram', labels: ['command', 'result'], exportedBy: 'shim', help: 'Time from sending a QMP command to its reply.' }),
  rpcRequests: spec({ name: 'virtq_rpc_requests_total', type: 'counter', labels: ['procedure', 'code'], exportedBy: 'both', help: 'RPC calls answered, by procedure and result code (OK or an error code).' }),
  rpcDuration: spec({ name: 'virtq_rpc_request_duration_seconds', type: 'histogram', labels: ['procedure'], exportedBy: 'both', help: 'Time from receiving an RPC call to sending its reply.' }),
  rpcDenied: spec({ name: 'virtq_rpc_access_denied_total', type: 'counter', labels: ['procedure', 'rule'], exportedBy: 'virtqemud', help: 'Calls refused by access rules, by procedure and rule (every host daemon with rules loaded).' }),
  shimCpu: spec({ name: 'virtq_shim_process_cpu_seconds_total', type: 'counter', labels: [], exportedBy: 'shim', help: 'CPU time used by the shim process itself.' }),
  shimRss: spec({ name: 'virtq_shim_process_resident_memory_bytes', type: 'gauge', labels: [], exportedBy: 'shim', help: 'Resident set size of the shim process itself.' }),
  shimHeap: spec({ name: 'virtq_shim_heap_used_bytes', type: 'gauge', labels: [], exportedBy: 'shim', help: 'V8 heap in use by the shim.' }),
  shimsRegistered: spec({ name: 'virtq_daemon_shims_registered', type: 'gauge', labels: [], exportedBy: 'virtqemud', help: 'Shims with a live registration.' }),
  domains: spec({ name: 'virtq_daemon_domains', type: 'gauge', labels: ['state'], exportedBy: 'virtqemud', help: 'VMs known to virtqemud, by state.' }),
  shimUp: spec({ name: 'virtq_shim_up', type: 'gauge', labels: ['domain', 'uuid'], exportedBy: 'virtqemud', help: '1 when the VM\'s shim answered this scrape in time, else 0.' }),
  shimScrape: spec({ name: 'virtq_shim_scrape_duration_seconds', type: 'gauge', labels: ['domain', 'uuid'], exportedBy: 'virtqemud', help: 'How long fetching the shim\'s metrics took in this scrape.' }),
  poolCapacity: spec({ name: 'virtq_storage_pool_capacity_bytes', type: 'gauge', labels: ['pool'], exportedBy: 'virtstoraged', help: 'Size of the filesystem holding each active pool.' }),
  poolAllocation: spec({ name: 'virtq_storage_pool_allocation_bytes', type: 'gauge', labels: ['pool'], exportedBy: 'virtstoraged', help: 'Bytes in use on the filesystem holding each active pool.' }),
  poolAvailable: spec({ name: 'virtq_storage_pool_available_bytes', type: 'gauge', labels: ['pool'], exportedBy: 'virtstoraged', help: 'Bytes still available on the filesystem holding each active pool.' }),
  poolVolumes: spec({ name: 'virtq_storage_pool_volumes', type: 'gauge', labels: ['pool'], exportedBy: 'virtstoraged', help: 'Volumes in each active pool.' }),
  storageOps: spec({ name: 'virtq_storage_operations_total', type: 'counter', labels: ['operation', 'code'], exportedBy: 'virtstoraged', help: 'Volume operations finished, by operation (create, clone, resize, delete, upload, download) and result code.' }),
  storageOpDuration: spec({ name: 'virtq_storage_operation_duration_seconds', type: 'histogram', labels: ['operation'], exportedBy: 'virtstoraged', help: 'How long each volume operation took.' }),
  storageBytes: spec({ name: 'virtq_storage_transferred_bytes_total', type: 'counter', labels: ['direction'], exportedBy: 'virtstoraged', help: 'Volume bytes uploaded (in) and downloaded (out).' }),
  secrets: spec({ name: 'virtq_secret_secrets', type: 'gauge', labels: ['ephemeral'], exportedBy: 'virtsecretd', help: 'Secrets defined, ephemeral (memory only) or not.' }),
  secretValueReads: spec({ name: 'virtq_secret_value_reads_total', type: 'counter', labels: ['procedure', 'code'], exportedBy: 'virtsecretd', help: 'Secret values read (getValue by clients, useValue by consumers such as shims), and refusals.' }),
  nodedevDevices: spec({ name: 'virtq_nodedev_devices', type: 'gauge', labels: ['cap'], exportedBy: 'virtnodedevd', help: 'Host devices present, by kind (pci, usb, net, block), read from sysfs when scraped.' }),
  nodedevEvents: spec({ name: 'virtq_nodedev_events_total', type: 'counter', labels: ['event'], exportedBy: 'virtnodedevd', help: 'Devices seen appearing (added) or going (removed) since virtnodedevd started.' }),
  nodedevPollFailures: spec({ name: 'virtq_nodedev_poll_failures_total', type: 'counter', labels: [], exportedBy: 'virtnodedevd', help: 'Polls of sysfs that failed (retried at the next interval).' }),
  networkPorts: spec({ name: 'virtq_network_ports', type: 'gauge', labels: ['network'], exportedBy: 'virtnetworkd', help: 'Ports (taps) on each active network.' }),
  networkLeases: spec({ name: 'virtq_network_dhcp_leases', type: 'gauge', labels: ['network'], exportedBy: 'virtnetworkd', help: 'Unexpired DHCP leases on each active nat or isolated network.' }),
  networkDnsmasqRestarts: spec({ name: 'virtq_network_dnsmasq_restarts_total', type: 'counter', labels: ['network'], exportedBy: 'virtnetworkd', help: 'Times a network\'s dnsmasq died and was restarted.' }),
  networkPortCreate: spec({ name: 'virtq_network_port_create_duration_seconds', type: 'histogram', labels: ['network'], exportedBy: 'virtnetworkd', help: 'How long creating a port (tap on the bridge, record on disk) took.' }),
  networkPortsReleased: spec({ name: 'virtq_network_ports_released_total', type: 'counter', labels: ['network', 'reason'], exportedBy: 'virtnetworkd', help: 'Ports deleted, by reason: deleted (asked for), vm-gone (the liveness check), network-stopped (net-destroy --force).' }),
} as const;

/** Prefix of virtqemud's Node process metrics (prom-client's default set). Shims export only the
 * three virtq_shim_* process figures above: the full default set is ~15 KiB of text per VM per
 * scrape and keeps perf_hooks histograms alive in every shim. */
export const PROCESS_METRIC_PREFIX = { virtqemud: 'virtq_daemon_' } as const;

/** QMP commands are a bounded set, but raw passthrough can name anything: keep the label bounded. */
export function boundedLabel(value: string, known: ReadonlySet<string>): string {
  return known.has(value) ? value : 'other';
}
