// The deadline of a call that sets none: its own module so the CLI's fast path (cli/fast-run.ts)
// takes the same figure as connect() without bundling the RPC client that dial.ts loads.

/** The deadline of a call that sets none, in ms (ConnectOptions.timeoutMs). */
export const DEFAULT_CALL_TIMEOUT_MS = 120_000;
