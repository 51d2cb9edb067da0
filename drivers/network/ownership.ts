// How virtq marks the interfaces it creates, so that after a crash it adopts or removes its own
// and never touches anyone else's: every bridge and tap it creates carries an ifalias naming this
// driver instance, and a tap's name is derived from its port id.

/** Prefix of every tap name virtq creates; `vq-` + 12 hex digits is exactly 15 bytes. */
export const TAP_PREFIX = 'vq-';

/** The tap for port `portId` (a UUID): its first 12 hex digits after `vq-`. */
export function tapNameFor(portId: string): string {
  return TAP_PREFIX + portId.replace(/-/g, '').slice(0, 12);
}

/** What an ifalias written by virtq says. */
export type OwnerMark =
  | { kind: 'net'; instance: string; network: string }
  | { kind: 'port'; instance: string; network: string; port: string };

/** The ifalias of a bridge virtq created for network `networkUuid`. */
export function bridgeAlias(instance: string, networkUuid: string): string {
  return `virtq:${instance}:net:${networkUuid}`;
}

/** The ifalias of the tap of port `portId` on network `networkUuid`. */
export function portAlias(instance: string, networkUuid: string, portId: string): string {
  return `virtq:${instance}:port:${networkUuid}:${portId}`;
}

/** Reads an ifalias; undefined when virtq did not write it. */
export function parseOwnerMark(alias: string | undefined): OwnerMark | undefined {
  const parts = (alias ?? '').split(':');
  if (parts[0] !== 'virtq' || parts[1] === undefined || parts[1] === '' || parts[3] === undefined) return undefined;
  const [, instance, kind, network, port] = parts;
  if (kind === 'net' && parts.length === 4) return { kind, instance, network };
  if (kind === 'port' && parts.length === 5 && port !== undefined) return { kind, instance, network, port };
  return undefined;
}
