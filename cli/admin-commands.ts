// `virtq admin ...`: the admin program's commands, served on a daemon's or a shim's admin
// socket. Getters without a CLI name fold into their setters: `limits` with no option shows the
// limits, `log-filters` with no argument shows the filters.
import { adminProgram, Limits } from '../protocol/index.js';
import { callCommand, type CallAdapter, type CommandSpec, type RunContext } from './command.js';
import type { Input } from './derive.js';
import { LogFiltersOutput, LogOutputsOutput } from './json-output.js';

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

const adapters: Readonly<Record<string, CallAdapter>> = {
  disconnectClient: { render: (_r, a) => `Client ${String(a['id'])} disconnected\n` },
  setLimits: {
    hints: {
      rename: { maxInflightPerClient: 'max-inflight', workerConcurrency: 'workers' },
      help: { maxClients: 'the most clients connected at once', maxInflightPerClient: 'the most calls in flight per client', workerConcurrency: 'how many jobs run at once' },
    },
    procedureFor: (args) => (Object.keys(args).length === 0 ? 'getLimits' : 'setLimits'),
    output: Limits,
  },
  setLogFilters: logSetting('setLogFilters', 'getLogFilters', 'filters'),
  setLogOutputs: logSetting('setLogOutputs', 'getLogOutputs', 'outputs'),
};

/** Every `virtq admin` command: the admin procedures with a CLI name. */
export function adminCommands(): CommandSpec[] {
  return Object.entries(adminProgram.procs)
    .filter(([, spec]) => spec.cli !== undefined)
    .map(([procName]) => callCommand(adminProgram, procName, adapters[procName]));
}
