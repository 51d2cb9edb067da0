// Human output: virsh-like aligned tables and "Label:  value" blocks, and a generic renderer that
// picks one of them from a result's shape, so a new procedure prints sensibly with no code here.

const ACRONYMS: Readonly<Record<string, string>> = { uuid: 'UUID', cpu: 'CPU', qemu: 'QEMU', rss: 'RSS', id: 'ID', vcpus: 'vCPUs', mib: 'MiB', ops: 'ops' };
const UNITS: ReadonlyArray<readonly [RegExp, string]> = [[/MiB$/, ' (MiB)'], [/Sec$/, ' (s)'], [/Ms$/, ' (ms)'], [/Bytes$/, ' (bytes)']];

/** `cpuTimeSec` -> `CPU time (s)`, `memoryMiB` -> `Memory (MiB)`: a label for a result field. */
export function humanize(key: string): string {
  let unit = '';
  let stem = key;
  for (const [re, text] of UNITS) {
    if (re.test(stem) && stem.replace(re, '') !== '') { unit = text; stem = stem.replace(re, ''); break; }
  }
  const words = stem.replace(/([a-z0-9])([A-Z])/g, '$1 $2').split(/[\s_-]+/).filter((w) => w !== '');
  const text = words.map((w, i) => ACRONYMS[w.toLowerCase()] ?? (i === 0 ? w[0]?.toUpperCase() + w.slice(1) : w.toLowerCase())).join(' ');
  return text + unit;
}

/** `rdBytes` -> `RD_BYTES`: a table column heading for a result field. */
export function columnHeading(key: string): string {
  return key.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toUpperCase();
}

/** One value as table or block text: yes/no, ISO times for `...At` fields, two decimals for fractions. */
export function formatValue(value: unknown, key = ''): string {
  if (value === undefined || value === null) return '-';
  if (typeof value === 'boolean') return value ? 'yes' : 'no';
  if (typeof value === 'number') {
    if (key.endsWith('At') && value > 1e11) return new Date(value).toISOString();
    return Number.isInteger(value) ? String(value) : value.toFixed(2);
  }
  if (typeof value === 'string') return value === '' ? '-' : value;
  if (Array.isArray(value) && value.every((v) => typeof v !== 'object' || v === null)) return value.length === 0 ? '-' : value.map((v) => formatValue(v)).join(', ');
  return JSON.stringify(value);
}

/** An aligned table with a rule under the headings, as virsh prints `list`. */
export function table(headings: readonly string[], rows: ReadonlyArray<readonly string[]>): string {
  const widths = headings.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]): string => ` ${cells.map((c, i) => c.padEnd(widths[i] ?? 0)).join('   ')}`.trimEnd();
  const rule = '-'.repeat(widths.reduce((a, w) => a + w, 0) + 3 * Math.max(0, widths.length - 1) + 2);
  return [line(headings), rule, ...rows.map(line)].join('\n') + '\n';
}

/** `Label:   value` lines with the values aligned, as virsh prints `dominfo`. */
export function keyValues(pairs: ReadonlyArray<readonly [string, string]>): string {
  const width = Math.max(0, ...pairs.map(([k]) => k.length + 1));
  return pairs.map(([k, v]) => `${`${k}:`.padEnd(width)}  ${v}`.trimEnd()).join('\n') + '\n';
}

// Nested objects become "Parent child" labels; arrays of scalars are joined.
function flatten(obj: Record<string, unknown>, prefix = ''): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  for (const [key, value] of Object.entries(obj)) {
    const label = prefix === '' ? humanize(key) : `${prefix} ${humanize(key).toLowerCase()}`;
    if (typeof value === 'object' && value !== null && !Array.isArray(value)) out.push(...flatten(value as Record<string, unknown>, label));
    else out.push([label, formatValue(value, key)]);
  }
  return out;
}

/** A table of objects: columns are the union of their fields, in first-seen order. */
export function objectTable(rows: ReadonlyArray<Record<string, unknown>>, columns?: readonly string[]): string {
  const keys = columns ?? [...new Set(rows.flatMap((r) => Object.keys(r)))];
  return table(keys.map(columnHeading), rows.map((r) => keys.map((k) => formatValue(r[k], k))));
}

// True when an array of objects sits anywhere inside: no label block can show it.
function hasObjectArray(value: unknown): boolean {
  if (Array.isArray(value)) return value.some((v) => typeof v === 'object' && v !== null);
  if (typeof value !== 'object' || value === null) return false;
  return Object.values(value).some(hasObjectArray);
}

function isRecordArray(value: unknown): value is Array<Record<string, unknown>> {
  return Array.isArray(value) && value.every((v) => typeof v === 'object' && v !== null && !Array.isArray(v));
}

/**
 * Renders any result: `{}` as nothing, an object holding one array of objects as a table, other
 * objects as a label block (nested fields flattened), anything a block cannot show as JSON.
 */
export function renderGeneric(result: unknown): string {
  if (typeof result !== 'object' || result === null) return `${formatValue(result)}\n`;
  const entries = Object.entries(result as Record<string, unknown>);
  if (entries.length === 0) return '';
  const [only] = entries;
  if (entries.length === 1 && only !== undefined && isRecordArray(only[1])) return only[1].length === 0 ? '' : objectTable(only[1]);
  if (isRecordArray(result)) return objectTable(result);
  return hasObjectArray(result) ? `${JSON.stringify(result, null, 2)}\n` : keyValues(flatten(result as Record<string, unknown>));
}

/** The one-line form of a message (errors are printed on one line). */
export function oneLine(text: string): string {
  return text.replace(/\s*\n\s*/g, ' ').trim();
}
