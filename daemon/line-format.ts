// The shim's log lines without pino: the same bytes pino 10 writes for what virtq logs (plain
// data, Errors under `err`), so a shim's lines still read as the daemons' and log tooling sees no
// difference. pino with its serializers, redaction and writer held ~0.3 MiB of a settled shim's
// heap (bench/RESULTS.md, issue 15, session 10). test/unit/daemon/line-log.test.ts writes the
// same calls through pino and through this and compares the lines.
//
// Where it is not pino: an object that JSON.stringify refuses (a cycle, a BigInt) falls back to
// keys sorted with "[Circular]" and BigInts as digits, as pino's fallback does, but without its
// depth and breadth limits; and only the containers a redaction changes are copied, so a Buffer
// or Map next to a redacted field serializes as JSON.stringify does.

/** A logger's level numbers, as pino writes them. */
export const LEVEL_NUMBERS = { trace: 10, debug: 20, info: 30, warn: 40, error: 50, fatal: 60 } as const;

type Stringifier = (value: unknown) => string | undefined;
type Path = readonly string[];
type Container = Record<string, unknown>;

const isObject = (v: unknown): v is Container => typeof v === 'object' && v !== null;
const own = (o: object, k: string): boolean => Object.prototype.hasOwnProperty.call(o, k);

/** JSON of `value`; on a cycle or a BigInt, the fallback described above. Undefined for what JSON drops. */
export function stringify(value: unknown): string | undefined {
  try {
    return JSON.stringify(value);
  } catch {
    return safeStringify(value, []);
  }
}

function safeStringify(value: unknown, stack: unknown[]): string | undefined {
  if (typeof value === 'bigint') return value.toString();
  if (!isObject(value)) return JSON.stringify(value);
  if (stack.includes(value)) return '"[Circular]"';
  const toJson = (value as { toJSON?: unknown }).toJSON;
  if (typeof toJson === 'function') return safeStringify((toJson as () => unknown).call(value), stack);
  stack.push(value);
  let out: string;
  if (Array.isArray(value)) {
    out = `[${value.map((v) => safeStringify(v, stack) ?? 'null').join(',')}]`;
  } else {
    const parts: string[] = [];
    for (const k of Object.keys(value).sort()) {
      const s = safeStringify(value[k], stack);
      if (s !== undefined) parts.push(`${JSON.stringify(k)}:${s}`);
    }
    out = `{${parts.join(',')}}`;
  }
  stack.pop();
  return out;
}

/** A copy of `v` (arrays, dates and prototypes kept) with `x` at `path`; `v` itself is never changed. */
function assoc(v: unknown, path: Path, x: unknown): unknown {
  const [k, ...rest] = path as [string, ...string[]];
  const src = v as Container;
  let copy: Container;
  if (Array.isArray(v)) copy = v.slice() as unknown as Container;
  else if (v instanceof Date) copy = new Date(v.getTime()) as unknown as Container;
  else {
    copy = Object.create(Object.getPrototypeOf(v) as object | null) as Container;
    for (const key in src) if (own(src, key)) copy[key] = src[key];
  }
  copy[k] = rest.length === 0 ? x : assoc(src[k], rest, x);
  return copy;
}

/** The keys `*` stands for in `v`: an array's indices, else every enumerable key (inherited too, as pino's redaction walks them). */
function keysOf(v: Container): string[] {
  if (Array.isArray(v)) return v.map((_, i) => String(i));
  const keys: string[] = [];
  for (const k in v) keys.push(k);
  return keys;
}

/** The concrete paths one redact path (`*` allowed) censors in `v`, with pino's rules: an existing own field, never a new one. */
function matches(v: unknown, parts: Path, at: string[] = []): string[][] {
  const star = parts.indexOf('*');
  if (star < 0) {
    // Every step but the last must be an object holding the next key; the last must be its own field.
    let cur = v;
    for (let i = 0; i < parts.length - 1; i++) {
      if (!isObject(cur) || !((parts[i] as string) in cur) || !isObject(cur[parts[i] as string])) return [];
      cur = cur[parts[i] as string];
    }
    return isObject(cur) && own(cur, parts[parts.length - 1] as string) ? [[...at, ...parts]] : [];
  }
  let cur = v;
  for (const p of parts.slice(0, star)) {
    if (!isObject(cur)) return [];
    cur = cur[p];
  }
  if (!isObject(cur)) return [];
  const base = [...at, ...parts.slice(0, star)];
  const after = parts.slice(star + 1);
  const holder = cur;
  if (after.length === 0) return keysOf(holder).map((k) => [...base, k]);
  return keysOf(holder).flatMap((k) => matches(holder[k], after, [...base, k]));
}

/** A stringifier that censors `paths` inside the value, then writes it as JSON. */
function redactor(paths: readonly Path[], censor: string): Stringifier {
  return (value) => {
    // No path reaches inside a string or a number: most fields (a pool, a volume name, a size)
    // skip the walk (matches() finds nothing in a non-object whatever the path).
    if (!isObject(value)) return stringify(value);
    let v: unknown = value;
    for (const p of paths) for (const m of matches(v, p)) v = assoc(v, m, censor);
    return stringify(v);
  };
}

/**
 * Per top-level key, how its value is written under pino's `redact` option: censored whole (a
 * one-segment path), through the redact paths that start with it, or through the `*.` paths.
 */
export interface Stringifiers {
  forKey(key: string): Stringifier | undefined;
}

/** pino's reading of a `redact.paths` list (a later one-segment path wins over deeper paths of its key). */
export function stringifiers(paths: readonly string[], censor: string): Stringifiers {
  const whole = new Set<string>();
  const byKey = new Map<string, Path[]>();
  let wildcard: Path[] | undefined;
  for (const path of paths) {
    const [ns, ...rest] = path.split('.') as [string, ...string[]];
    if (rest.length === 0) { whole.add(ns); byKey.delete(ns); continue; }
    if (ns !== '*' && whole.has(ns)) continue;
    if (ns === '*') {
      for (const list of byKey.values()) list.push(rest);
      (wildcard ??= []).push(rest);
    } else {
      const list = byKey.get(ns) ?? [...(wildcard ?? [])];
      list.push(rest);
      byKey.set(ns, list);
    }
  }
  const censored = JSON.stringify(censor);
  const perKey = new Map([...byKey].map(([k, list]) => [k, redactor(list, censor)]));
  const wild = wildcard === undefined ? undefined : redactor(wildcard, censor);
  return { forKey: (key) => (whole.has(key) ? () => censored : perKey.get(key) ?? wild) };
}

const isErrorLike = (e: unknown): e is Error => isObject(e) && typeof e.message === 'string';

function causeOf(e: Error): Error | undefined {
  const cause = (e as { cause?: unknown }).cause;
  const c = typeof cause === 'function' ? (cause as () => unknown).call(e) : cause;
  return isErrorLike(c) ? c : undefined;
}

function messageWithCauses(e: Error, seen: Set<Error>, skip = false): string {
  const message = skip ? '' : (e.message || '');
  if (seen.has(e)) return `${message}: ...`;
  const cause = causeOf(e);
  if (cause === undefined) return message;
  seen.add(e);
  const vErrorStyle = typeof (e as { cause?: unknown }).cause === 'function';
  return message + (vErrorStyle ? '' : ': ') + messageWithCauses(cause, seen, vErrorStyle);
}

function stackWithCauses(e: Error, seen: Set<Error>): string {
  const stack = e.stack || '';
  if (seen.has(e)) return `${stack}\ncauses have become circular...`;
  const cause = causeOf(e);
  if (cause === undefined) return stack;
  seen.add(e);
  return `${stack}\ncaused by: ${stackWithCauses(cause, seen)}`;
}

/** An Error as pino's `err` serializer writes it: type, message and stack with their causes, then its other fields. */
export function serializeError(value: unknown, seen: Set<unknown> = new Set()): unknown {
  if (!isErrorLike(value)) return value;
  seen.add(value);
  const ctor = (value as { constructor?: unknown }).constructor;
  const out: Container = {
    type: typeof ctor === 'function' ? (ctor as { name: string }).name : value.name,
    message: messageWithCauses(value, new Set()),
    stack: stackWithCauses(value, new Set()),
  };
  const aggregate = (value as { errors?: unknown }).errors;
  if (Array.isArray(aggregate)) out['aggregateErrors'] = aggregate.map((e) => serializeError(e, seen));
  const src = value as unknown as Container;
  for (const key in src) {
    // pino's serializer object answers `raw` from its prototype, so an error's own `raw` is never copied.
    if (out[key] !== undefined || key === 'raw') continue;
    const v = src[key];
    if (isErrorLike(v)) {
      if (key !== 'cause' && !seen.has(v)) out[key] = serializeError(v, seen);
    } else {
      out[key] = v;
    }
  }
  seen.delete(value);
  return out;
}

/** `,"key":value` for each field of `obj` pino would write, in its order and with its rules. */
export function fieldsJson(obj: object, s: Stringifiers, bindings = false): string {
  let out = '';
  const src = obj as Container;
  for (const key in src) {
    let value = src[key];
    if (!own(src, key) || value === undefined) continue;
    // A child's bindings never carry pino's own options.
    if (bindings && key.length >= 5 && (key === 'level' || key === 'serializers' || key === 'formatters' || key === 'customLevels')) continue;
    if (key === 'err') value = serializeError(value);
    const stringifier = s.forKey(key);
    let text: string | undefined;
    if (bindings) {
      text = (stringifier ?? stringify)(value);
    } else {
      switch (typeof value) {
        case 'undefined':
        case 'function':
          continue;
        case 'number':
        case 'boolean': {
          const v = typeof value === 'number' && !Number.isFinite(value) ? null : value;
          text = stringifier === undefined ? String(v) : stringifier(v);
          break;
        }
        default:
          text = (stringifier ?? stringify)(value);
      }
    }
    if (text === undefined) continue;
    out += `,${JSON.stringify(key)}:${text}`;
  }
  return out;
}

/** `,"msg":…` as pino writes a message (none when undefined). */
export function messageJson(msg: unknown, s: Stringifiers): string {
  if (msg === undefined || typeof msg === 'function') return '';
  const stringifier = s.forKey('msg');
  let v = msg;
  if (typeof v === 'number' && !Number.isFinite(v)) v = null;
  if ((typeof v === 'number' || typeof v === 'boolean' || v === null) && stringifier === undefined) return `,"msg":${String(v)}`;
  return `,"msg":${(stringifier ?? stringify)(v) ?? ''}`;
}
