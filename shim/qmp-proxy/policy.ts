// What a tool on the shared QMP socket may send. Read-only `query-*` commands always pass;
// commands the shim must own (the run state, the process, migration, fds, the block graph and
// HMP, which can do all of that) never do; anything else changes the VM and passes only when the
// configuration lists it, and never on an id virtq made (its disks, NICs, secrets, chardevs).
import { isVirtqOwnedId, qomPathTouchesOwned } from '../../drivers/hypervisor/qemu/owned-ids.js';

/** The verdict on one command. */
export type Verdict =
  | { kind: 'read' }
  | { kind: 'write' }
  | { kind: 'refused'; desc: string };

/** Commands whose effect virtq must see and drive itself; refused whatever the allow-list says. */
const SHIM_OWNED: ReadonlyMap<string, string> = new Map([
  ['quit', "use 'virtq destroy' or 'virtq shutdown'"],
  ['stop', "use 'virtq suspend'"],
  ['cont', "use 'virtq resume'"],
  ['system_reset', "use 'virtq reset'"],
  ['system_powerdown', "use 'virtq shutdown' or 'virtq reboot'"],
  ['system_wakeup', 'the run state is the shim\'s'],
  ['human-monitor-command', 'HMP can run any command, around this allow-list'],
  ['getfd', 'file descriptors cannot be passed through this socket'],
  ['add-fd', 'file descriptors cannot be passed through this socket'],
  ['closefd', 'the monitor\'s file descriptors are the shim\'s'],
  ['remove-fd', 'the monitor\'s file descriptors are the shim\'s'],
  ['blockdev-del', 'the block graph is the shim\'s; use \'virtq detach-disk\''],
  ['blockdev-reopen', 'the block graph is the shim\'s'],
  ['transaction', 'a transaction can hold any action, around this allow-list'],
  ['snapshot-load', 'loading a snapshot replaces the run state the shim tracks'],
  ['x-exit-preconfig', 'the start sequence is the shim\'s'],
]);

/** Command names refused by prefix (migration in every form). */
const OWNED_PREFIXES = ['migrate', 'x-migrate'];

/** Commands that name an object by an id argument: adding or removing one of virtq's is refused. */
const ID_ARGUMENT: ReadonlyMap<string, string> = new Map([
  ['device_add', 'id'], ['device_del', 'id'], ['object-add', 'id'], ['object-del', 'id'],
  ['netdev_add', 'id'], ['netdev_del', 'id'], ['chardev-add', 'id'], ['chardev-remove', 'id'],
  ['chardev-change', 'id'], ['blockdev-add', 'node-name'],
]);

/** Commands that name an object by a QOM path. */
const PATH_ARGUMENT: ReadonlySet<string> = new Set(['qom-get', 'qom-set', 'qom-list']);

/** True when `name` is owned by the shim whatever the configuration says (an allow-list naming it changes nothing). */
export function isShimOwnedCommand(name: string): boolean {
  return SHIM_OWNED.has(name) || OWNED_PREFIXES.some((p) => name.startsWith(p));
}

/** Decides on `name` with `args` for a socket whose configuration allows `allow`. */
export function classify(name: string, args: Record<string, unknown> | undefined, allow: ReadonlySet<string>): Verdict {
  const reason = SHIM_OWNED.get(name) ?? (OWNED_PREFIXES.some((p) => name.startsWith(p)) ? 'migration is the shim\'s' : undefined);
  if (reason !== undefined) return refused(`command '${name}' is reserved to virtq's shim on this shared QMP socket: ${reason}`);
  const idKey = ID_ARGUMENT.get(name);
  const id = idKey === undefined ? undefined : args?.[idKey];
  if (typeof id === 'string' && isVirtqOwnedId(id)) {
    return refused(`'${id}' is managed by virtq; command '${name}' may not touch it from this shared QMP socket (use virtq's own commands)`);
  }
  const path = PATH_ARGUMENT.has(name) ? args?.['path'] : undefined;
  if (typeof path === 'string' && qomPathTouchesOwned(path)) {
    return refused(`QOM path '${path}' is inside an object managed by virtq; command '${name}' may not use it from this shared QMP socket`);
  }
  if (name.startsWith('query-')) return { kind: 'read' };
  if (allow.has(name)) return { kind: 'write' };
  return refused(`command '${name}' may change the VM and is not in this VM's QMP allow-list (add it to "qmpProxy": {"allow": [...]} in the definition, or virtq-shim --qmp-proxy-allow)`);
}

function refused(desc: string): Verdict {
  return { kind: 'refused', desc };
}
