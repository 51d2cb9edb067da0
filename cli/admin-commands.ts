// `virtq admin ...`: the admin program's commands, served on a daemon's or a shim's admin
// socket. Getters without a CLI name fold into their setters: `limits` with no option shows the
// limits, `log-filters` with no argument shows the filters.
import { adminProgram, Limits, VirtqError } from '../protocol/index.js';
import { table } from './render.js';
import { callCommand, type CallAdapter, type CommandSpec, type RunContext } from './command.js';
import type { Input } from './derive.js';
import { LogFiltersOutput, LogOutputsOutput } from './json-output.js';
import { configAdapters } from './admin-config-commands.js';

/** A `log-filters` / `log-outputs` style command: show the value, or replace it and show the new one. */
function logSetting(setter: 'setLogFilters' | 'setLogOutputs', getter: 'getLogFilters' | 'getLogOutputs', field: 'filters' | 'outputs'): CallAdapter {
  return {
    arguments: [{ name: field, field, description: `the new ${field} (default: show the current ones)`, required: false }],
    output: field === 'filters' ? LogFiltersOutput : LogOutputsOutput,
    run: async (ctx: RunContext, input: Input) => {
      const conn = await ctx.connectAdmin();
      const value = input.args[field];
      if (typeof value === 'string') await conn.call(setter, { [field]: value });
      const now = await conn.call(getter, {}) as Record<string, string>;
      if (ctx.json) ctx.printJson(now);
      else ctx.print(`${now[field] || '(none)'}\n`);
    },
  };
}

// `virtq admin all-shims PROCEDURE [ARGS-JSON]`: virtqemud runs the procedure on every shim.
const allShims: CallAdapter = {
  arguments: [
    { name: 'procedure', field: 'procedure', description: 'an admin procedure, e.g. setLogFilters or getLimits', required: true },
    { name: 'args', field: 'args', description: 'its arguments as JSON, e.g. \'{"filters":"debug"}\'', required: false, parse: (text: string) => {
      try {
        return JSON.parse(text) as unknown;
      } catch (err) {
        throw new VirtqError('INVALID_ARG', `arguments are not valid JSON: ${(err as Error).message}`);
      }
    } },
  ],
  render: (result) => {
    const rows = (result as { results: Array<{ name: string; ok: boolean; result?: unknown; error?: { code: string; message: string } }> }).results;
    return table(['Name', 'Result'], rows.map((r) => [r.name, r.ok ? JSON.stringify(r.result) : `${r.error?.code ?? 'ERROR'}: ${r.error?.message ?? ''}`]));
  },
};

// `virtq admin upgrade NAME | --all`: virtqemud upgrades the shims and reports each.
const upgrade: CallAdapter = {
  arguments: [{ name: 'name', field: 'name', description: 'the VM whose shim to upgrade (or --all)', required: false }],
  hints: { help: { all: 'upgrade every running VM\'s shim', parallel: 'how many shims upgrade at once (default 2)', timeoutSec: 'how long each may take (default 120)' } },
  render: (result) => {
    const rows = (result as { results: Array<{ name: string; ok: boolean; result?: { oldPid: number; newPid: number; cutoverMs: number }; error?: { code: string; message: string } }> }).results;
    return table(['Name', 'Result'], rows.map((r) => [r.name, r.ok && r.result !== undefined
      ? `upgraded: shim pid ${r.result.oldPid} -> ${r.result.newPid}, cut-over ${r.result.cutoverMs.toFixed(1)} ms`
      : `not upgraded, old shim still serves: ${r.error?.code ?? 'ERROR'}: ${r.error?.message ?? ''}`]));
  },
};

const adapters: Readonly<Partial<Record<keyof typeof adminProgram.procs, CallAdapter>>> = {
  callShims: allShims,
  upgradeShims: upgrade,
  disconnectClient: { render: (_r, a) => `Client ${String(a['id'])} disconnected\n` },
  setLimits: {
    hints: {
      rename: { maxInflightPerClient: 'max-inflight', workerConcurrency: 'workers' },
      help: { maxClients: 'the most clients connected at once to each socket', maxInflightPerClient: 'the most calls in flight per client', workerConcurrency: 'how many jobs run at once' },
    },
    procedureFor: (args) => (Object.keys(args).length === 0 ? 'getLimits' : 'setLimits'),
    output: Limits,
  },
  setLogFilters: logSetting('setLogFilters', 'getLogFilters', 'filters'),
  setLogOutputs: logSetting('setLogOutputs', 'getLogOutputs', 'outputs'),
  ...configAdapters,
};

/** Every `virtq admin` command: the admin procedures with a CLI name. */
export function adminCommands(): CommandSpec[] {
  return Object.entries(adminProgram.procs)
    .filter(([, spec]) => spec.cli !== undefined)
    .map(([procName]) => callCommand(adminProgram, procName, adapters[procName as keyof typeof adminProgram.procs]));
}
