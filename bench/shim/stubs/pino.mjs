// Measurement-only stand-in for pino (bench/shim/run.mjs --variants): loggers that drop every
// line, with the surface daemon/logging.ts uses. Never shipped.
function make(bindings, opts) {
  const noop = () => undefined;
  const logger = {
    level: 'info',
    trace: noop, debug: noop, info: noop, warn: noop, error: noop, fatal: noop, silent: noop,
    flush: noop,
    bindings: () => bindings,
    child(b) { const c = make({ ...bindings, ...b }, opts); opts.onChild?.(c); return c; },
    isLevelEnabled: () => false,
  };
  return logger;
}
export function pino(opts = {}) { return make({}, opts); }
pino.destination = () => {
  const stream = { write: () => true, flushSync: () => undefined, end: () => undefined, on: () => stream, once: () => stream, removeListener: () => stream };
  return stream;
};
pino.multistream = () => ({ write: () => true });
pino.stdTimeFunctions = {};
pino.levels = { values: { trace: 10, debug: 20, info: 30, warn: 40, error: 50, fatal: 60 } };
export default pino;
