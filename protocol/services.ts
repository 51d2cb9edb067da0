// The daemons of one virtq host (contract: binaries, URI schemes, socket names; ARCHITECTURE.md
// "Secondary daemons"): which programs each serves. A server refuses a program that another
// daemon serves with WRONG_DAEMON naming it, and a URI's scheme names the daemon it reaches.

/** Which daemons implement a procedure (a program's procedures name theirs in `servers`). */
export type ServerRole = 'shim' | 'aggregator' | 'storage' | 'secret' | 'network' | 'nodedev';

/** One daemon of the host. */
export interface DaemonSpec {
  /** The URI scheme that reaches it: `storage:///system`. */
  readonly scheme: string;
  readonly role: ServerRole;
  /** The programs it serves besides `admin`, which every daemon serves. */
  readonly programs: readonly string[];
  /** What it serves, in a few words, for help texts and errors. */
  readonly serves: string;
}

/** Every daemon, by binary name. The shim (`virtq-shim`) is per VM and reached by `qemu+shim:`. */
export const DAEMONS = {
  virtqemud: { scheme: 'qemu', role: 'aggregator', programs: ['virtq', 'registry'], serves: 'VMs' },
  virtstoraged: { scheme: 'storage', role: 'storage', programs: ['storage'], serves: 'storage pools and volumes' },
  virtsecretd: { scheme: 'secret', role: 'secret', programs: ['secret'], serves: 'secrets' },
  virtnetworkd: { scheme: 'network', role: 'network', programs: ['network'], serves: 'networks and network ports' },
  virtnodedevd: { scheme: 'nodedev', role: 'nodedev', programs: ['nodedev'], serves: 'host devices' },
} as const satisfies Record<string, DaemonSpec>;

/** A daemon's binary name. */
export type DaemonName = keyof typeof DAEMONS;

/** Every daemon name, in table order. */
export const DAEMON_NAMES = Object.keys(DAEMONS) as DaemonName[];

/** The daemon that serves `program`, or undefined (admin and unknown programs). */
export function daemonServing(program: string): DaemonName | undefined {
  return DAEMON_NAMES.find((d) => (DAEMONS[d].programs as readonly string[]).includes(program));
}

/** The daemon a URI scheme (without the colon) reaches, or undefined. */
export function daemonForScheme(scheme: string): DaemonName | undefined {
  return DAEMON_NAMES.find((d) => DAEMONS[d].scheme === scheme);
}
