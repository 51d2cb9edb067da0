// What `virtq list` sends and prints, in one place for the two paths that run it: the list
// command (cli/vm-commands.ts) and the fast path for hot read commands (cli/fast-main.ts,
// docs/decisions/0028-cli-startup-snapshot.md). Depends on nothing heavier than the renderer.
import type { DomainRow } from '../protocol/index.js';
import { objectTable } from './render.js';

/** The listing's table columns, in order. */
export const LIST_COLUMNS = ['name', 'state', 'reason', 'persistent', 'autostart'] as const;

/** The listing filter for `list`'s options (keys as commander stores them). */
export function listFilter(opts: Readonly<Record<string, unknown>>): Record<string, unknown> {
  const { all, active, inactive, persistent, transient, state } = opts;
  const filter: Record<string, unknown> = {};
  if (active === true) filter['active'] = true;
  if (inactive === true) filter['inactive'] = true;
  if (persistent === true) filter['persistent'] = true;
  if (transient === true) filter['transient'] = true;
  if (state !== undefined) filter['state'] = state;
  // Like virsh: active VMs unless --all or another filter says otherwise.
  if (all !== true && Object.keys(filter).length === 0) filter['active'] = true;
  return filter;
}

/** The rows `list` prints (and `list --json` prints as an array) from listDomains' result. */
export function listRows(result: unknown): DomainRow[] {
  return (result as { domains: DomainRow[] }).domains;
}

/** The listing as a virsh-like table. */
export function renderList(rows: unknown): string {
  return objectTable(rows as DomainRow[], LIST_COLUMNS);
}
