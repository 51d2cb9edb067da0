// `virtq migrate`, `domjobinfo` and `domjobabort`: what differs from the derived commands. migrate
// waits for as long as the migration takes (no client deadline unless --timeout) and, on a
// terminal, draws a progress bar from domjobinfo polled on the same connection; with --json it
// writes each progress reading as one JSON line on stderr instead, keeping stdout one document.
import { VirtqError, delay, virtqProgram, type DomainRow, type JobInfo, type MigrateResult } from '../protocol/index.js';
import type { CallAdapter, RunContext } from './command.js';
import type { CliConnection } from './io.js';
import { deriveFromSchema, type Input } from './derive.js';
import { CLUSTER_OPTION, TLS_OPTIONS, fleetOf, tlsOf } from './fleet-commands.js';
import { parseFleetUri } from '../client/fleet-view.js';
import { routeMigration } from '../client/fleet-route.js';
import { progressReporter } from './progress.js';
import { formatSize } from './size-format.js';

const POLL_MS = 500;

/**
 * Where the call goes: the daemon of -c with DEST_URI as given, or, with --to-host in an etcd
 * fleet, the virtqemud of the host holding the VM's name with the named host's virtqemud as the
 * destination. A VM defined on its host moves with its definition (a name lives on one host).
 */
async function target(ctx: RunContext, input: Input, callArgs: Record<string, unknown>): Promise<{ conn: CliConnection; own: boolean; dest: string }> {
  const toHost = input.opts['toHost'];
  if (typeof toHost !== 'string') {
    if (callArgs['destUri'] === undefined) throw new VirtqError('INVALID_ARG', 'give the destination: virtq migrate NAME DEST_URI, or virtq migrate NAME --to-host HOST in an etcd fleet');
    return { conn: await ctx.connect(), own: false, dest: String(callArgs['destUri']) };
  }
  if (callArgs['destUri'] !== undefined) throw new VirtqError('INVALID_ARG', 'give DEST_URI or --to-host HOST, not both');
  const route = await routeMigration(parseFleetUri(fleetOf(ctx, input)), String(callArgs['name']), toHost, ctx.io.clock, tlsOf(input));
  const conn = await ctx.io.connect(route.fromUri);
  try {
    const row = await conn.call('lookupByName', { name: callArgs['name'] }) as DomainRow;
    if (row.persistent) {
      callArgs['persistent'] ??= true;
      callArgs['undefineSource'] ??= true;
    }
  } catch (err) {
    conn.close();
    throw err;
  }
  callArgs['destUri'] = route.toUri;
  return { conn, own: true, dest: `host ${route.to.host}` };
}

const migrate: CallAdapter = {
  arguments: [
    { name: 'name', field: 'name', required: true, description: 'VM name' },
    { name: 'dest-uri', field: 'destUri', required: false, description: 'the destination virtqemud (qemu:///system, qemu:///system?root=DIR, ...?socket=PATH); not with --to-host' },
  ],
  options: [
    { flags: '--to-host <host>', key: 'toHost', description: 'in an etcd fleet (--cluster, -c cluster:///..., $VIRTQ_CLUSTER): migrate to this host, found with the VM\'s own host in the fleet registry; the cluster-wide claim moves at switchover' },
    CLUSTER_OPTION, ...TLS_OPTIONS,
  ],
  run: async (ctx, input) => {
    const callArgs = deriveFromSchema(virtqProgram.procs.migrate.args, { skip: ['name', 'destUri'] }).toArgs(input);
    callArgs['name'] = input.args['name'];
    if (input.args['dest-uri'] !== undefined) callArgs['destUri'] = input.args['dest-uri'];
    const name = String(callArgs['name']);
    const { conn, own, dest } = await target(ctx, input, callArgs);
    try {
      await runMigration(ctx, conn, name, dest, callArgs);
    } finally {
      if (own) conn.close();
    }
  },
};

// Runs the migration on `conn`, drawing progress from domjobinfo polled on the same connection.
async function runMigration(ctx: RunContext, conn: CliConnection, name: string, dest: string, callArgs: Record<string, unknown>): Promise<void> {
  const bar = ctx.io.stderr.isTTY && !ctx.json ? progressReporter(ctx, `Migrating '${name}'`) : undefined;
  let finished = false;
  let stop: () => void = () => undefined;
  const stopped = new Promise<void>((resolve) => { stop = resolve; });
  const poller = (async () => {
    while ((bar !== undefined || ctx.json) && !finished) {
      await Promise.race([delay(ctx.io.clock, POLL_MS), stopped]);
      if (finished) break;
      const job = await conn.call('getJobInfo', { name }).catch(() => undefined) as JobInfo | undefined;
      if (job?.type !== 'migration' || finished) continue;
      if (ctx.json) ctx.io.stderr.write(`${JSON.stringify({ event: 'progress', name, ...job })}\n`);
      else bar?.report({ doneBytes: job.transferredBytes, totalBytes: job.transferredBytes + job.remainingBytes });
    }
  })();
  let result: MigrateResult;
  try {
    // The migration takes as long as the guest's memory takes to move: no deadline of the client's own.
    result = await conn.call('migrate', callArgs, { timeoutMs: 0 }) as MigrateResult;
  } finally {
    finished = true;
    stop();
    await poller;
    bar?.done();
  }
  if (ctx.json) ctx.printJson(result);
  else ctx.print(`Domain '${name}' migrated to ${dest} in ${(result.totalMs / 1000).toFixed(1)} s (${formatSize(result.transferredBytes)} sent${result.downtimeMs === undefined ? '' : `, paused ${result.downtimeMs} ms`})\n`);
}

const domjobinfo: CallAdapter = {
  render: (r) => {
    const j = r as JobInfo;
    if (j.type === 'none') return 'Job type:         None\n';
    const migration = j.type === 'migration';
    const rows: [string, string][] = Object.entries({
      'Job type': 'Unbounded', Operation: migration ? 'Outgoing migration' : 'Snapshot delete (block commit)', Status: j.status, 'Time elapsed': `${j.elapsedMs} ms`,
      'Data processed': formatSize(j.transferredBytes), 'Data remaining': formatSize(j.remainingBytes), 'Data total': formatSize(j.totalBytes),
      'Transfer rate': `${formatSize(j.rateBytesPerSec)}/s`,
      // A merge has no switchover pause and no memory passes.
      ...(migration ? { 'Expected downtime': j.expectedDowntimeMs === undefined ? '-' : `${j.expectedDowntimeMs} ms` } : {}),
      ...(j.downtimeMs === undefined ? {} : { 'Total downtime': `${j.downtimeMs} ms` }), ...(migration ? { 'Dirty syncs': String(j.dirtySyncCount) } : {}),
    });
    // virsh's layout: one "Label:  value" line each.
    return rows.map(([k, v]) => `${`${k}:`.padEnd(19)}${v}\n`).join('');
  },
};

const domjobabort: CallAdapter = { render: (_r, a) => `Job of domain '${String(a['name'])}' aborted\n` };

/** The adapters of the migration commands, by procedure. */
export const migrationAdapters: Readonly<Record<string, CallAdapter>> = { migrate, getJobInfo: domjobinfo, abortJob: domjobabort };
