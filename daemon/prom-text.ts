// Renders metric families (prom-client's JSON form) as Prometheus text exposition, merging
// families that several registries export (each shim has its own series of virtq_domain_*):
// a family's HELP and TYPE appear once, followed by every sample of every source.
import type { Static } from '@sinclair/typebox';
import type { MetricFamily } from '../protocol/index.js';

type Family = Static<typeof MetricFamily>;

const escapeLabel = (v: string): string => v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
const escapeHelp = (v: string): string => v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');

function formatValue(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Infinity) return '+Inf';
  if (v === -Infinity) return '-Inf';
  return String(v);
}

function formatLabels(labels: Record<string, string | number>): string {
  const parts = Object.entries(labels).map(([k, v]) => `${k}="${escapeLabel(typeof v === 'number' ? formatValue(v) : v)}"`);
  return parts.length === 0 ? '' : `{${parts.join(',')}}`;
}

/** Merges `sources` (each a registry's families) into one exposition text. */
export function renderExposition(sources: readonly (readonly Family[])[]): string {
  const merged = new Map<string, { help: string; type: string; lines: string[] }>();
  for (const families of sources) {
    for (const f of families) {
      let entry = merged.get(f.name);
      if (entry === undefined) merged.set(f.name, (entry = { help: f.help, type: f.type, lines: [] }));
      for (const v of f.values) entry.lines.push(`${v.metricName ?? f.name}${formatLabels(v.labels)} ${formatValue(v.value)}`);
    }
  }
  const out: string[] = [];
  for (const [name, f] of merged) {
    out.push(`# HELP ${name} ${escapeHelp(f.help)}`, `# TYPE ${name} ${f.type}`, ...f.lines);
  }
  return `${out.join('\n')}\n`;
}
