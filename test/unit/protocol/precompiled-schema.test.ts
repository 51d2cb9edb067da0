// The shim's build-time schema checks (protocol/precompiled-schema.ts, scripts/shim-checks.mjs) must
// accept and refuse exactly what protocol/schema.ts does, with the same INVALID_ARG text, and load
// TypeBox's compiler only for a failed value or a schema without a generated check.
import { describe, expect, it } from 'vitest';
import type { TSchema } from '@sinclair/typebox';
import { TypeCompiler } from '@sinclair/typebox/compiler';
import { AclFile, LifecycleEvent, StartRequest, adminProgram, compile, definitionValidator, virtqProgram } from '../../../protocol/index.js';
import { precompiledSchema, type CheckFactory } from '../../../protocol/precompiled-schema.js';

/** What the build embeds for one schema: TypeCompiler.Code's text, run as a function body. */
function factory(schema: TSchema): CheckFactory {
  // The build puts this very text in the bundle, inside `() => { ... }`.
  return new Function(TypeCompiler.Code(schema)) as CheckFactory;
}

function shimSchemas(): Map<string, TSchema> {
  const out = new Map<string, TSchema>([['definition', definitionValidator.schema], ['start-request', StartRequest], ['lifecycle-event', LifecycleEvent], ['acl-file', AclFile]]);
  for (const [name, v] of virtqProgram.argValidators) if (v.id !== undefined && virtqProgram.procs[name as keyof typeof virtqProgram.procs].servers.includes('shim')) out.set(v.id, v.schema);
  for (const v of adminProgram.argValidators.values()) if (v.id !== undefined) out.set(v.id, v.schema);
  return out;
}

const VALID_DEF = { name: 'vm-1', memoryMiB: 64, vcpus: 1 };
const HOSTILE: unknown[] = [
  undefined, null, 0, -1, 1.5, Number.NaN, Infinity, '', 'x', true, [], [1], {}, { name: 1 }, { name: '' }, { name: '../x' },
  { name: 'a'.repeat(300) }, { name: 'vm-1' }, { name: 'vm-1', extra: true }, { name: 'vm-1', timeoutMs: -5 }, { name: 'vm-1', force: 'yes' },
  VALID_DEF, { ...VALID_DEF, memoryMiB: 0 }, { ...VALID_DEF, disks: [{ path: 'rel' }] }, { ...VALID_DEF, disks: [{}] }, { ...VALID_DEF, interfaces: [{ type: 'nope' }] },
  { definition: VALID_DEF, paused: false }, { definition: {}, paused: 'no' }, { rules: [] }, { rules: [{}] }, { kind: 'started', at: 1, seq: 2 },
  { __proto__: { name: 'vm-1' } }, Object.create(null) as unknown, { name: 'vm-1', nested: { deep: { deeper: [null, {}] } } },
];

function outcome(run: () => unknown): unknown {
  try {
    run();
    return 'ok';
  } catch (err) {
    const e = err as { code?: string; message: string; details?: unknown };
    return { code: e.code, message: e.message, details: e.details };
  }
}

describe('precompiled schema checks', () => {
  const schemas = shimSchemas();
  const checks = new Map([...schemas].map(([id, schema]) => [id, factory(schema)]));

  it('cover every procedure the shim serves and the named checks', () => {
    expect(schemas.size).toBeGreaterThan(40);
    for (const id of ['definition', 'start-request', 'virtq.getState', 'admin.getMetrics']) expect(schemas.has(id)).toBe(true);
  });

  it('accept and refuse what schema.ts does, with the same INVALID_ARG', () => {
    let loads = 0;
    const pre = precompiledSchema(checks, () => { loads++; return { TypeCompiler }; });
    for (const [id, schema] of schemas) {
      const a = compile(schema, id);
      const b = pre.compile(schema, id);
      for (const value of HOSTILE) {
        expect(b.check(value), `${id} ${JSON.stringify(value)}`).toBe(a.check(value));
        expect(outcome(() => b.parse(value, 'x')), id).toEqual(outcome(() => a.parse(value, 'x')));
      }
    }
    expect(loads).toBeGreaterThan(0);
  });

  it('loads TypeBox only for a failed value or a schema with no generated check', () => {
    let loads = 0;
    const pre = precompiledSchema(checks, () => { loads++; return { TypeCompiler }; });
    const v = pre.lazyValidator(virtqProgram.procs.getState.args, 'virtq.getState');
    expect(v.parse({ name: 'vm-1' })).toEqual({ name: 'vm-1' });
    expect(v.check({ name: 1 })).toBe(false);
    expect(loads).toBe(0);
    expect(() => v.parse({ name: 1 }, 'arguments of getState')).toThrow(/invalid arguments of getState: \/name: /);
    expect(loads).toBe(1);
    const other = pre.lazyValidator(virtqProgram.procs.getState.args, 'not.generated');
    expect(other.check({ name: 'vm-1' })).toBe(true);
    expect(other.id).toBe('not.generated');
  });
});
