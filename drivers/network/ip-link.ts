// Bridges, taps, addresses and routes through iproute2's JSON output (`ip -j`). Each call is one
// `ip` process (a tap is created and attached in one `ip -batch`), because every process costs
// milliseconds and port creation has a 20 ms budget.
import { VirtqError } from '../../protocol/errors.js';
import { commandError, runOk, type CommandRunner } from './runner.js';
import type { TapOwner } from './types.js';

/** What the driver needs to know of one host interface. */
export interface LinkInfo {
  name: string;
  /** `bridge`, `tun`, `veth`, ...; undefined for a plain device. */
  kind?: string;
  /** For a tun device: `tap` or `tun`. */
  tunType?: string;
  alias?: string;
  master?: string;
  up: boolean;
  address?: string;
}

interface IpLinkJson {
  ifname?: string;
  ifalias?: string;
  master?: string;
  flags?: string[];
  address?: string;
  linkinfo?: { info_kind?: string; info_data?: { type?: string } };
}

function toLinkInfo(j: IpLinkJson): LinkInfo {
  const info: LinkInfo = { name: j.ifname ?? '', up: (j.flags ?? []).includes('UP') };
  if (j.linkinfo?.info_kind !== undefined) info.kind = j.linkinfo.info_kind;
  if (j.linkinfo?.info_data?.type !== undefined) info.tunType = j.linkinfo.info_data.type;
  if (j.ifalias !== undefined && j.ifalias !== '') info.alias = j.ifalias;
  if (j.master !== undefined) info.master = j.master;
  if (j.address !== undefined) info.address = j.address;
  return info;
}

function parseLinks(stdout: string, what: string): LinkInfo[] {
  try {
    return (JSON.parse(stdout === '' ? '[]' : stdout) as IpLinkJson[]).map(toLinkInfo);
  } catch (err) {
    throw new VirtqError('INTERNAL', `${what}: cannot parse the output of ip -j link: ${(err as Error).message}`, { cause: err });
  }
}

/** Every interface of the host (or namespace), with details. */
export async function listLinks(runner: CommandRunner): Promise<LinkInfo[]> {
  return parseLinks(await runOk(runner, 'ip', ['-j', '-d', 'link', 'show'], 'listing interfaces'), 'listing interfaces');
}

/** The interface `name`, or undefined when there is none. */
export async function getLink(runner: CommandRunner, name: string): Promise<LinkInfo | undefined> {
  const args = ['-j', '-d', 'link', 'show', 'dev', name];
  const res = await runner.run('ip', args);
  if (res.code !== 0) {
    if (/does not exist/.test(res.stderr)) return undefined;
    throw commandError(`looking up interface ${name}`, 'ip', args, res);
  }
  return parseLinks(res.stdout, `looking up interface ${name}`)[0];
}

/**
 * Creates bridge `name` with a fixed `mac` (a bridge whose address was set keeps it, instead of
 * taking its lowest port's, so the gateway's MAC never changes under the guests), no STP and no
 * forwarding delay (a new port forwards at once), marked with `alias`, and up.
 */
export async function createBridge(runner: CommandRunner, name: string, mac: string, alias: string): Promise<void> {
  const args = ['-batch', '-'];
  const res = await runner.run('ip', args, {
    input: `link add name ${name} address ${mac} type bridge stp_state 0 forward_delay 0\nlink set dev ${name} alias ${alias} up\n`,
  });
  if (res.code === 0) return;
  // A bridge made without its mark would later look like someone else's: remove it.
  if (!/^Command failed -:1\b/m.test(res.stderr)) await deleteLink(runner, name).catch(() => undefined);
  throw commandError(`creating bridge ${name}`, 'ip', args, res);
}

/** Gives `dev` the address `cidr` (idempotent: `ip addr replace`) and brings it up. */
export async function ensureAddressUp(runner: CommandRunner, dev: string, cidr: string): Promise<void> {
  await runOk(runner, 'ip', ['-batch', '-'], `configuring ${cidr} on ${dev}`, {
    input: `addr replace ${cidr} dev ${dev}\nlink set dev ${dev} up\n`,
  });
}

/** Deletes interface `name`; true when it existed. */
export async function deleteLink(runner: CommandRunner, name: string): Promise<boolean> {
  const args = ['link', 'del', 'dev', name];
  const res = await runner.run('ip', args);
  if (res.code === 0) return true;
  if (/does not exist|Cannot find device/.test(res.stderr)) return false;
  throw commandError(`deleting interface ${name}`, 'ip', args, res);
}

/** What createTap makes. */
export interface TapSpec {
  name: string;
  bridge: string;
  /** The tap's own (host-side) address. */
  mac: string;
  alias: string;
  owner?: TapOwner;
}

/**
 * Creates the persistent tap `spec.name`, attaches it to its bridge, marks it and brings it up,
 * in one `ip -batch`. A tap of that name that already exists makes `ip tuntap add` fail (EBUSY),
 * so someone else's tap is never taken over. Half-done work is removed before the error is thrown.
 */
export async function createTap(runner: CommandRunner, spec: TapSpec): Promise<void> {
  const owner = [
    ...(spec.owner?.uid !== undefined ? ['user', String(spec.owner.uid)] : []),
    ...(spec.owner?.gid !== undefined ? ['group', String(spec.owner.gid)] : []),
  ].join(' ');
  const input = `tuntap add dev ${spec.name} mode tap ${owner}\n` +
    `link set dev ${spec.name} address ${spec.mac} alias ${spec.alias} master ${spec.bridge} up\n`;
  const res = await runner.run('ip', ['-batch', '-'], { input });
  if (res.code === 0) return;
  const tapMade = !/^Command failed -:1\b/m.test(res.stderr);
  if (tapMade) await deleteLink(runner, spec.name).catch(() => undefined);
  if (/busy/i.test(res.stderr)) {
    throw new VirtqError('ALREADY_EXISTS', `tap ${spec.name} already exists on the host and is not free`, { details: { tap: spec.name } });
  }
  throw commandError(`creating tap ${spec.name} on bridge ${spec.bridge}`, 'ip', ['-batch', '-'], res);
}

/** Attaches `dev` to `bridge` and brings it up (recovery of a tap whose bridge was re-created). */
export async function attachUp(runner: CommandRunner, dev: string, bridge: string): Promise<void> {
  await runOk(runner, 'ip', ['link', 'set', 'dev', dev, 'master', bridge, 'up'], `attaching ${dev} to ${bridge}`);
}

/** One IPv4 route: destination in CIDR (`default` for the default route) and its device. */
export interface RouteInfo {
  dst: string;
  dev?: string;
}

/** The IPv4 routes of the main table. */
export async function listRoutes(runner: CommandRunner): Promise<RouteInfo[]> {
  const out = await runOk(runner, 'ip', ['-j', '-4', 'route', 'show'], 'listing routes');
  const rows = JSON.parse(out === '' ? '[]' : out) as Array<{ dst?: string; dev?: string }>;
  return rows.map((r) => (r.dev === undefined ? { dst: r.dst ?? '' } : { dst: r.dst ?? '', dev: r.dev }));
}
