// `virtq __complete KIND [CONTEXT]`, the hidden helper the completion scripts call: the names of
// one kind of object, one per line, from the daemon the URI names. It never fails loudly and
// never hangs: any error prints nothing, and the whole answer must come within DEADLINE_MS.
import type { Clock } from '../../protocol/index.js';
import type { RunContext } from '../command.js';
import { DYNAMIC_KINDS, type DynamicKind } from './model.js';

/** How long completion waits for a daemon before giving up on it (a TAB must not hang the shell). */
export const DEADLINE_MS = 1500;

type Rows<K extends string> = Record<K, Array<Record<string, unknown>>>;

const pick = <K extends string>(key: K, field: string) => (r: unknown): string[] => ((r as Rows<K>)[key] ?? []).map((row) => String(row[field]));

async function namesOf(ctx: RunContext, kind: DynamicKind, context: string | undefined, timeoutMs: number): Promise<string[]> {
  const opts = { timeoutMs };
  const call = async (program: string, proc: string, args: Record<string, unknown>): Promise<unknown> =>
    (await (program === 'virtq' ? ctx.connect() : ctx.connectProgram(program))).call(proc, args, opts);
  switch (kind) {
    case 'domain': return pick('domains', 'name')(await call('virtq', 'listDomains', {}));
    case 'pool': return pick('pools', 'name')(await call('storage', 'listPools', {}));
    case 'volume': return context === undefined ? [] : pick('volumes', 'name')(await call('storage', 'listVolumes', { pool: context }));
    case 'network': return pick('networks', 'name')(await call('network', 'listNetworks', {}));
    case 'secret': return pick('secrets', 'uuid')(await call('secret', 'listSecrets', {}));
    case 'nodedev': return pick('devices', 'name')(await call('nodedev', 'listDevices', {}));
    case 'disk-target': {
      if (context === undefined) return [];
      const def = (await call('virtq', 'getDefinition', { name: context })) as { disks?: { target: string }[] };
      return (def.disks ?? []).map((d) => d.target);
    }
    case 'mac': {
      if (context === undefined) return [];
      const def = (await call('virtq', 'getDefinition', { name: context })) as { interfaces?: { mac?: string }[] };
      return (def.interfaces ?? []).flatMap((i) => (i.mac === undefined ? [] : [i.mac]));
    }
  }
}

/** Within `ms` on `clock`, `work`'s value, else `fallback` (the work is abandoned, not awaited). */
function within<T>(clock: Clock, ms: number, work: Promise<T>, fallback: T): Promise<T> {
  return new Promise((resolve) => {
    const timer = clock.setTimeout(() => resolve(fallback), ms);
    work.then((v) => { timer.dispose(); resolve(v); }, () => { timer.dispose(); resolve(fallback); });
  });
}

/** Runs the helper: prints the names of `kind` (in `context`), one per line, or nothing at all. */
export async function runComplete(ctx: RunContext, kind: string, context: string | undefined): Promise<void> {
  if (!(DYNAMIC_KINDS as readonly string[]).includes(kind)) return;
  const names = await within(ctx.io.clock, DEADLINE_MS, namesOf(ctx, kind as DynamicKind, context, DEADLINE_MS), []);
  if (names.length > 0) ctx.io.stdout.write(`${[...new Set(names)].sort().join('\n')}\n`);
}
