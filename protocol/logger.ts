// The logging surface protocol code needs. pino's Logger satisfies it structurally, so protocol
// does not import pino and tests can pass a silent logger.

/** A structured logger (pino-compatible subset). */
export interface Logger {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
  child(bindings: Record<string, unknown>): Logger;
}

/** A logger that drops everything. */
export function silentLogger(): Logger {
  const log: Logger = { debug() {}, info() {}, warn() {}, error() {}, child: () => log };
  return log;
}
