// The CLI's version, on its own so the fast path (cli/fast-main.ts) prints it without commander.

/** The CLI's version. */
export const VERSION = '0.1.0';
