// Measurement-only stand-in for prom-client (bench/shim/run.mjs --variants): the classes and
// functions the shim calls, doing nothing. Never shipped.
class Metric {
  constructor(cfg) { this.cfg = cfg; for (const r of cfg.registers ?? []) r.registerMetric(this); }
  inc() {} set() {} observe() {} reset() {} labels() { return this; } get() { return { name: this.cfg.name, values: [] }; }
}
export class Counter extends Metric {}
export class Gauge extends Metric {}
export class Histogram extends Metric {}
export class Summary extends Metric {}
export class Registry {
  constructor() { this.metricsList = []; this.contentType = 'text/plain; version=0.0.4; charset=utf-8'; }
  registerMetric(m) { this.metricsList.push(m); }
  setDefaultLabels() {}
  async getMetricsAsJSON() { return []; }
  async metrics() { return ''; }
}
export const register = new Registry();
export function collectDefaultMetrics() {}
export default { Counter, Gauge, Histogram, Summary, Registry, register, collectDefaultMetrics };
