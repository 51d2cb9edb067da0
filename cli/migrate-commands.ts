// `virtq migrate`, `domjobinfo` and `domjobabort`: what differs from the derived commands. migrate
// waits for as long as the migration takes (no client deadline unless --timeout) and, on a
// terminal, draws a progress bar from domjobinfo polled on the same connection; with --json it
// writes each progress reading as one JSON line on stderr instead, keeping stdout one document.
import { delay, virtqProgram, type JobInfo, type MigrateResult } from '../protocol/index.js';
import type { CallAdapter } from './command.js';
import { deriveFromSchema } from './derive.js';
import { progressReporter } from './progress.js';
import { formatSize } from './sizes.js';

const POLL_MS = 500;

const migrate: CallAdapter = {
  run: async (ctx, input) => {
    const callArgs = deriveFromSchema(virtqProgram.procs.migrate.args).toArgs(input);
    const name = String(callArgs['name']);
    const conn = await ctx.connect();
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
    else ctx.print(`Domain '${name}' migrated to ${String(callArgs['destUri'])} in ${(result.totalMs / 1000).toFixed(1)} s (${formatSize(result.transferredBytes)} sent${result.downtimeMs === undefined ? '' : `, paused ${result.downtimeMs} ms`})\n`);
  },
};

const domjobinfo: CallAdapter = {
  render: (r) => {
    const j = r as JobInfo;
    if (j.type === 'none') return 'Job type:         None\n';
    const rows: [string, string][] = Object.entries({
      'Job type': 'Unbounded', Operation: 'Outgoing migration', Status: j.status, 'Time elapsed': `${j.elapsedMs} ms`,
      'Data processed': formatSize(j.transferredBytes), 'Data remaining': formatSize(j.remainingBytes), 'Data total': formatSize(j.totalBytes),
      'Transfer rate': `${formatSize(j.rateBytesPerSec)}/s`, 'Expected downtime': j.expectedDowntimeMs === undefined ? '-' : `${j.expectedDowntimeMs} ms`,
      ...(j.downtimeMs === undefined ? {} : { 'Total downtime': `${j.downtimeMs} ms` }), 'Dirty syncs': String(j.dirtySyncCount),
    });
    // virsh's layout: one "Label:  value" line each.
    return rows.map(([k, v]) => `${`${k}:`.padEnd(19)}${v}\n`).join('');
  },
};

const domjobabort: CallAdapter = { render: (_r, a) => `Job of domain '${String(a['name'])}' aborted\n` };

/** The adapters of the migration commands, by procedure. */
export const migrationAdapters: Readonly<Record<string, CallAdapter>> = { migrate, getJobInfo: domjobinfo, abortJob: domjobabort };
