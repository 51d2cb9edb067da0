// The admin procedures about logging, the same on every daemon: read and replace the per-module
// filters and the outputs at run time.
import { adminProgram, type Handlers } from '../protocol/index.js';
import type { Logs } from './log-filters.js';

/** Log-filter and log-output handlers backed by `logs`. */
export function adminLogHandlers(logs: Logs): { program: typeof adminProgram; handlers: Handlers<typeof adminProgram> } {
  return {
    program: adminProgram,
    handlers: {
      getLogFilters: () => ({ filters: logs.filtersText }),
      setLogFilters: ({ filters }) => { logs.setFilters(filters); return {}; },
      getLogOutputs: () => ({ outputs: logs.outputsText }),
      setLogOutputs: ({ outputs }) => { logs.setOutputs(outputs); return {}; },
    },
  };
}
