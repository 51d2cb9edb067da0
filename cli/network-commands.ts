// The `network` program's commands (virsh's net-* names), built from the catalogue by
// callCommand; this table holds what differs: definitions from a file, virsh-like messages and
// tables of networks, ports and leases.
import { NetworkDefinition, lazyValidator, networkProgram, type LeaseRow, type NetworkRow, type PortRow } from '../protocol/index.js';
import { callCommand, type CallAdapter, type CommandSpec } from './command.js';
import { readJsonObject } from './definition-file.js';
import { keyValues, objectTable } from './render.js';

type Args = Record<string, unknown>;
type NetworkProc = keyof typeof networkProgram.procs & string;

const said = (what: (a: Args) => string) => (_r: unknown, a: Args): string => `${what(a)}\n`;
const net = (a: Args): string => `Network ${String(a['name'])}`;
const subnet = (n: NetworkRow): string => (n.ipv4 === undefined ? '-' : `${n.ipv4.address}/${n.ipv4.prefix}`);
const when = (ms: number | null): string => (ms === null ? 'never' : new Date(ms).toISOString().replace('T', ' ').replace(/\.\d+Z$/, ''));

const networkBlock = (n: NetworkRow): string => keyValues([
  ['Name', n.name], ['UUID', n.uuid], ['Type', n.type], ['Active', n.state === 'active' ? 'yes' : 'no'], ['Autostart', n.autostart ? 'yes' : 'no'],
  ['Bridge', n.bridge], ['Address', subnet(n)], ['DHCP', n.ipv4?.dhcp === undefined ? '-' : `${n.ipv4.dhcp.start} - ${n.ipv4.dhcp.end}`],
  ['Domain', n.domain ?? '-'], ['Ports', String(n.ports)], ['dnsmasq', n.dnsmasqPid === undefined ? '-' : `pid ${n.dnsmasqPid}, ${n.dnsmasqRestarts} restart(s)`],
]);

/** What differs from the derived default, by procedure (a misspelt procedure fails tsc). */
const adapters: Readonly<Partial<Record<NetworkProc, CallAdapter>>> = {
  listNetworks: {
    render: (r) => objectTable((r as { networks: NetworkRow[] }).networks.map((n) => ({ name: n.name, state: n.state, autostart: n.autostart, type: n.type, bridge: n.bridge, subnet: subnet(n), ports: n.ports }))),
  },
  getNetwork: { render: (r) => networkBlock(r as NetworkRow) },
  defineNetwork: {
    arguments: [{ name: 'file', description: 'the network definition (JSON: {"name","type":"nat"|"isolated"|"bridge","bridge","ipv4":{"address","prefix","dhcp":{"start","end"}}})', required: true }],
    toArgs: async (input, _d, ctx) => {
      const { value } = await readJsonObject(String(input.args['file']), ctx.io.cwd, 'network definition');
      return { definition: lazyValidator(NetworkDefinition).parse(value, 'network definition') };
    },
    render: (r) => `Network ${(r as NetworkRow).name} defined (bridge ${(r as NetworkRow).bridge}, ${subnet(r as NetworkRow)})\n`,
  },
  undefineNetwork: { render: said((a) => `${net(a)} has been undefined`) },
  startNetwork: { render: said((a) => `${net(a)} started`) },
  stopNetwork: {
    hints: { help: { force: 'also delete the ports VMs still use (their NICs lose the network)' } },
    render: said((a) => `${net(a)} destroyed`),
  },
  setNetworkAutostart: {
    hints: { skip: ['autostart'] },
    options: [{ flags: '--disable', key: 'disable', description: 'stop starting the network with virtnetworkd' }],
    toArgs: (input) => ({ name: input.args['name'], autostart: input.opts['disable'] !== true }),
    render: (_r, a) => `${net(a)} ${a['autostart'] === true ? 'marked as autostarted' : 'unmarked as autostarted'}\n`,
  },
  listLeases: {
    hints: { help: { mac: 'only the lease of this MAC' } },
    render: (r) => objectTable((r as { leases: LeaseRow[] }).leases.map((l) => ({
      expires: when(l.expiresAt), mac: l.mac, address: `${l.ip}/${l.prefix}`, hostname: l.hostname ?? '-', vm: l.vmName ?? '-',
    }))),
  },
  listPorts: {
    render: (r) => objectTable((r as { ports: PortRow[] }).ports.map((p) => ({ id: p.id, tap: p.tap, mac: p.mac, vm: p.vmName ?? p.vmUuid }))),
  },
};

/** Every network command: the catalogue's CLI procedures. */
export function networkCommands(): CommandSpec[] {
  return (Object.entries(networkProgram.procs) as [NetworkProc, (typeof networkProgram.procs)[NetworkProc]][])
    .filter(([, spec]) => spec.cli !== undefined)
    .map(([procName]) => callCommand(networkProgram, procName, adapters[procName]));
}
