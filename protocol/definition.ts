// The VM definition: the JSON document users write, validated against this schema everywhere
// (shim, virtqemud, CLI). Field names are contract; docs/definition.schema.json is generated
// from this file. Pure data: drivers may import it, as they import the error catalogue.
import { Type, type Static } from '@sinclair/typebox';
import { lazyValidator } from './schema.js';
import { VirtqError } from './errors.js';
import { NAME_PATTERN } from './names.js';
import { sha256 } from './node-crypto.js';

export { NAME_PATTERN } from './names.js';
const UUID_PATTERN = '^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$';
/** A MAC address: six hex octets separated by colons. */
export const MAC_PATTERN = '^([0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}$';
/** An absolute path with no NUL byte. */
const ABS_PATH = Type.String({ pattern: '^/[^\\u0000]*$', maxLength: 4096, description: 'absolute path' });

export const DomainName = Type.String({ pattern: NAME_PATTERN, description: 'VM name' });
export const DomainUuid = Type.String({ pattern: UUID_PATTERN, description: 'RFC 4122 UUID' });
export const LifecycleAction = Type.Union([Type.Literal('destroy'), Type.Literal('restart'), Type.Literal('preserve')]);

export const KernelBoot = Type.Object({
  path: ABS_PATH,
  initrd: Type.Optional(ABS_PATH),
  cmdline: Type.Optional(Type.String({ maxLength: 4096 })),
}, { additionalProperties: false });

/** A volume of virtstoraged, instead of a path: the shim asks virtstoraged where it is at start. */
export const DiskSource = Type.Object({
  pool: Type.String({ pattern: NAME_PATTERN, description: 'storage pool name' }),
  volume: Type.String({ pattern: '^[A-Za-z0-9_+][A-Za-z0-9._+-]{0,254}$', description: 'volume name in the pool' }),
}, { additionalProperties: false });

/** A LUKS-encrypted qcow2 disk: its passphrase is the value of this virtsecretd secret. */
export const DiskEncryption = Type.Object({
  secret: Type.String({ pattern: UUID_PATTERN, description: 'secret UUID' }),
}, { additionalProperties: false });

export const DiskSpec = Type.Object({
  /** The image; or give `source` (exactly one of the two). */
  path: Type.Optional(ABS_PATH),
  source: Type.Optional(DiskSource),
  format: Type.Optional(Type.Union([Type.Literal('raw'), Type.Literal('qcow2')], { default: 'raw' })),
  bus: Type.Optional(Type.Union([Type.Literal('virtio'), Type.Literal('ide')], { default: 'virtio' })),
  target: Type.String({ pattern: '^(vd|hd|sd)[a-z]{1,2}$', description: 'guest device name, e.g. vda' }),
  readonly: Type.Optional(Type.Boolean()),
  shareable: Type.Optional(Type.Boolean()),
  encryption: Type.Optional(DiskEncryption),
}, { additionalProperties: false });

export const InterfaceSpec = Type.Union([
  Type.Object({
    type: Type.Literal('user'),
    mac: Type.Optional(Type.String({ pattern: '^([0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}$' })),
  }, { additionalProperties: false }),
  Type.Object({
    type: Type.Literal('tap'),
    ifname: Type.String({ pattern: '^[A-Za-z0-9_.-]{1,15}$' }),
    mac: Type.Optional(Type.String({ pattern: '^([0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}$' })),
  }, { additionalProperties: false }),
  /** A port on a virtnetworkd network: the shim asks for it at start; the MAC is generated at definition when absent, and kept. */
  Type.Object({
    type: Type.Literal('network'),
    network: Type.String({ pattern: NAME_PATTERN, description: 'network name (virtnetworkd)' }),
    mac: Type.Optional(Type.String({ pattern: MAC_PATTERN })),
  }, { additionalProperties: false }),
]);

/** A QMP command name, as an allow-list names it. */
export const QMP_COMMAND_PATTERN = '^[A-Za-z][A-Za-z0-9_-]{0,63}$';

/** The VM's shared QMP socket (run/shims/NAME-qmp-proxy.sock): whether it is served, and which state-changing commands other tools may send. */
export const QmpProxySpec = Type.Object({
  enabled: Type.Optional(Type.Boolean({ description: 'serve the shared QMP socket (default true; a host-wide virtq-shim/virtqemud --no-qmp-proxy turns it off for every VM)' })),
  allow: Type.Optional(Type.Array(Type.String({ pattern: QMP_COMMAND_PATTERN }), {
    maxItems: 256, description: 'QMP commands that may change the VM which tools may send (query-* always pass; the shim\'s own commands never do)',
  })),
}, { additionalProperties: false });

export const Definition = Type.Object({
  name: DomainName,
  uuid: Type.Optional(DomainUuid),
  memoryMiB: Type.Integer({ minimum: 16, maximum: 4_194_304 }),
  vcpus: Type.Optional(Type.Integer({ minimum: 1, maximum: 288, default: 1 })),
  machine: Type.Optional(Type.String({ pattern: '^[A-Za-z0-9._-]{1,64}$', default: 'pc' })),
  accel: Type.Optional(Type.Union([Type.Literal('kvm'), Type.Literal('tcg')], { description: 'absent: KVM when usable, else TCG' })),
  cpu: Type.Optional(Type.String({ pattern: '^[A-Za-z0-9._+-]{1,64}$' })),
  emulator: Type.Optional(ABS_PATH),
  kernel: Type.Optional(KernelBoot),
  disks: Type.Optional(Type.Array(DiskSpec, { default: [], maxItems: 64 })),
  interfaces: Type.Optional(Type.Array(InterfaceSpec, { default: [], maxItems: 32 })),
  onPoweroff: Type.Optional(LifecycleAction),
  onReboot: Type.Optional(LifecycleAction),
  onCrash: Type.Optional(LifecycleAction),
  qmpProxy: Type.Optional(QmpProxySpec),
}, { additionalProperties: false, $id: 'https://virtq.dev/schema/definition.json', title: 'virtq VM definition' });

export type Definition = Static<typeof Definition>;
export type DiskSpec = Static<typeof DiskSpec>;
export type DiskSource = Static<typeof DiskSource>;
export type InterfaceSpec = Static<typeof InterfaceSpec>;
/** An interface on a virtnetworkd network. */
export type NetworkInterface = Extract<InterfaceSpec, { type: 'network' }>;
export type LifecycleAction = Static<typeof LifecycleAction>;
export type QmpProxySpec = Static<typeof QmpProxySpec>;

/** The definition check (compiled on first use). */
export const definitionValidator = lazyValidator(Definition, 'definition');

/** A disk with its defaults filled in (a volume disk has `source` and no path yet). */
export type NormalizedDisk = DiskSpec & Required<Pick<DiskSpec, 'format' | 'bus' | 'readonly' | 'shareable'>>;

/** A disk whose image is known: a path, found by virtstoraged for a volume disk (which keeps its `source`). */
export type ResolvedDisk = NormalizedDisk & { path: string };

/** The port virtnetworkd gave a network interface: its id and the tap QEMU opens. */
export interface InterfacePort {
  id: string;
  tap: string;
}

/** An interface as QEMU is started with it: a network interface has, once virtnetworkd gave one, its port. */
export type ResolvedInterface = Exclude<InterfaceSpec, NetworkInterface> | (NetworkInterface & { port?: InterfacePort });

/** A definition with its defaults filled in and a UUID: what shims and drivers work with. */
export interface NormalizedDefinition extends Omit<Definition, 'uuid' | 'vcpus' | 'machine' | 'disks' | 'interfaces' | 'onPoweroff' | 'onReboot' | 'onCrash'> {
  uuid: string;
  vcpus: number;
  machine: string;
  disks: NormalizedDisk[];
  interfaces: InterfaceSpec[];
  onPoweroff: LifecycleAction;
  onReboot: LifecycleAction;
  onCrash: LifecycleAction;
}

/** A definition whose every disk is resolved: what QEMU is started from (network interfaces carry their ports). */
export interface ResolvedDefinition extends Omit<NormalizedDefinition, 'disks' | 'interfaces'> {
  disks: ResolvedDisk[];
  interfaces: ResolvedInterface[];
}

/**
 * Fills in a disk's defaults: the same for a disk in a definition and one hot-plugged later.
 * Throws INVALID_ARG (at `field`) unless it names exactly one of a path and a volume.
 */
export function normalizeDisk(d: DiskSpec, field = '/disk'): NormalizedDisk {
  if ((d.path === undefined) === (d.source === undefined)) {
    throw new VirtqError('INVALID_ARG', `invalid definition: ${field}: give exactly one of "path" and "source" ({"pool","volume"})`, { details: { path: field } });
  }
  return { ...d, format: d.format ?? 'raw', bus: d.bus ?? 'virtio', readonly: d.readonly ?? false, shareable: d.shareable ?? false };
}

/** A running VM's definition as its user wrote it: a volume disk names its volume, not the path found for it; a network interface has no port. */
export function asDefined<D extends NormalizedDefinition | ResolvedDefinition>(def: D): NormalizedDefinition {
  return {
    ...def,
    disks: def.disks.map((d) => (d.source === undefined ? d : (({ path: _found, ...rest }) => rest)(d))),
    interfaces: def.interfaces.map((i) => (i.type === 'network' && 'port' in i ? (({ port: _port, ...rest }) => rest)(i) : i)),
  };
}

/**
 * The MAC QEMU's NIC `index` of VM `uuid` gets when none is given: 52:54:00 and three bytes of
 * sha256(uuid/index), so the same definition always gives the same address.
 */
export function derivedMac(uuid: string, index: number): string {
  const digest = sha256(`${uuid}/${index}`);
  const tail = [...digest.subarray(0, 3)].map((b) => b.toString(16).padStart(2, '0'));
  return ['52', '54', '00', ...tail].join(':');
}

/** Checks a NIC's MAC (colon form): unicast and not all zero; INVALID_ARG at `field` otherwise. Returns it lowercase. */
export function checkNicMac(mac: string, field: string): string {
  const lower = mac.toLowerCase();
  if (!new RegExp(MAC_PATTERN).test(lower)) throw new VirtqError('INVALID_ARG', `invalid definition: ${field}: "${mac}" is not a MAC address (e.g. 52:54:00:12:34:56)`, { details: { path: field } });
  if ((parseInt(lower.slice(0, 2), 16) & 1) === 1) throw new VirtqError('INVALID_ARG', `invalid definition: ${field}: ${lower} is a multicast address; a NIC needs a unicast one (even first octet)`, { details: { path: field } });
  if (lower === '00:00:00:00:00:00') throw new VirtqError('INVALID_ARG', `invalid definition: ${field}: 00:00:00:00:00:00 is not a usable NIC address`, { details: { path: field } });
  return lower;
}

// Network interfaces get their MAC now (kept in the definition, so it is the same at every start);
// two NICs of one VM with the same MAC are refused.
function normalizeInterfaces(list: InterfaceSpec[], uuid: string): InterfaceSpec[] {
  const seen = new Set<string>();
  return list.map((iface, i) => {
    if (iface.type !== 'network' && iface.mac === undefined) return iface;
    const field = `/interfaces/${i}/mac`;
    const mac = checkNicMac(iface.mac ?? derivedMac(uuid, i), field);
    if (seen.has(mac)) throw new VirtqError('INVALID_ARG', `invalid definition: ${field}: MAC ${mac} is used by another interface of this VM`, { details: { path: field } });
    seen.add(mac);
    return iface.type === 'network' ? { ...iface, mac } : iface;
  });
}

/** `def` as a resolved definition when every disk names a path; INVALID_ARG naming the first volume disk otherwise. */
export function pathsOnly(def: NormalizedDefinition): ResolvedDefinition {
  return {
    ...def,
    disks: def.disks.map((d) => {
      if (d.path === undefined) throw new VirtqError('INVALID_ARG', `disk ${d.target} names a volume; it needs virtstoraged to find its path`, { details: { target: d.target } });
      return { ...d, path: d.path };
    }),
  };
}

/**
 * Validates `value` and fills in defaults. Throws INVALID_ARG naming the offending field path.
 * `newUuid` is passed in so callers control where randomness comes from.
 */
export function normalizeDefinition(value: unknown, newUuid: () => string): NormalizedDefinition {
  const def = definitionValidator.parse(value, 'definition');
  const targets = new Set<string>();
  const disks = (def.disks ?? []).map((d, i): NormalizedDisk => {
    if (targets.has(d.target)) {
      throw new VirtqError('INVALID_ARG', `invalid definition: /disks/${i}/target: target ${d.target} is used twice`, { details: { path: `/disks/${i}/target` } });
    }
    targets.add(d.target);
    return normalizeDisk(d, `/disks/${i}`);
  });
  const uuid = (def.uuid ?? newUuid()).toLowerCase();
  return {
    ...def,
    uuid,
    vcpus: def.vcpus ?? 1,
    machine: def.machine ?? 'pc',
    disks,
    interfaces: normalizeInterfaces(def.interfaces ?? [], uuid),
    onPoweroff: def.onPoweroff ?? 'destroy',
    onReboot: def.onReboot ?? 'restart',
    onCrash: def.onCrash ?? 'preserve',
  };
}
