// protocol/lean-type.ts stands in for TypeBox's `Type` in the shim's bundle: every schema the
// protocol builds with it must read the same, field for field, as TypeBox's own (the shim's code reads
// `properties`, `required`, `anyOf`, `const` at run time) — all but what no run-time code reads
// (TypeBox's symbols, a record's key pattern) and lean-type's own Optional marker.
import { describe, expect, it, vi } from 'vitest';

type Protocol = typeof import('../../../protocol/index.js');

/** The schema as plain JSON: no symbols, no record key patterns, no lean-type marker. */
function plain(schema: unknown): unknown {
  return JSON.parse(JSON.stringify(schema, (key, value: unknown) => (key === '~optional' || key === 'patternProperties' ? undefined : value)));
}

/** Every schema the protocol module exports or holds in a program, by a readable name. */
function schemas(p: Protocol): Map<string, unknown> {
  const out = new Map<string, unknown>();
  for (const [name, x] of Object.entries(p)) {
    if (x === null || typeof x !== 'object') continue;
    const program = x as { procs?: Record<string, { args: unknown; ret: unknown }>; events?: Record<string, { body: unknown }>; argValidators?: unknown };
    if (program.argValidators instanceof Map && program.procs !== undefined) {
      for (const [proc, spec] of Object.entries(program.procs)) { out.set(`${name}.${proc}.args`, spec.args); out.set(`${name}.${proc}.ret`, spec.ret); }
      for (const [ev, spec] of Object.entries(program.events ?? {})) out.set(`${name}.${ev}`, spec.body);
    } else if (!Array.isArray(x) && !(x instanceof Map) && !(x instanceof Set) && ('type' in x || 'anyOf' in x || 'allOf' in x || 'const' in x)) {
      out.set(name, x);
    }
  }
  return out;
}

describe('lean-type', () => {
  it('builds every protocol schema as TypeBox does, as far as run-time code reads it', async () => {
    vi.resetModules();
    const real = schemas(await import('../../../protocol/index.js'));
    const realStates = (await import('../../../protocol/index.js')).DOMAIN_STATES;
    vi.resetModules();
    vi.doMock('@sinclair/typebox', async (original) => ({ ...(await original<object>()), Type: (await import('../../../protocol/lean-type.js')).Type }));
    const leanModule = await import('../../../protocol/index.js');
    vi.doUnmock('@sinclair/typebox');
    const lean = schemas(leanModule);
    expect(real.size).toBeGreaterThan(200);
    expect([...lean.keys()]).toEqual([...real.keys()]);
    const differ = [...real].filter(([name, schema]) => JSON.stringify(plain(lean.get(name))) !== JSON.stringify(plain(schema))).map(([n]) => n);
    for (const name of differ) expect(plain(lean.get(name)), name).toEqual(plain(real.get(name)));
    expect(leanModule.DOMAIN_STATES).toEqual(realStates);
  });

  it('refuses a builder method it does not have, by name', async () => {
    const { Type } = await import('../../../protocol/lean-type.js');
    expect(() => Type['Tuple']).toThrow(/Type\.Tuple is not in protocol\/lean-type\.ts/);
  });
});
