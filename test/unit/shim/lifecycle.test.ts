// Pins the lifecycle table: every pair of states is listed below as allowed or refused, so a
// change to the table shows up here as a deliberate edit, as Firecracker pins its action table.
import { describe, expect, it } from 'vitest';
import { DOMAIN_STATES, VirtqError, type DomainState } from '../../../protocol/index.js';
import { canTransition, checkTransition } from '../../../shim/vm/lifecycle.js';

const allowed: Record<DomainState, readonly DomainState[]> = {
  starting: ['running', 'paused', 'shutoff', 'crashed'],
  running: ['running', 'paused', 'shutting-down', 'shutoff', 'crashed'],
  paused: ['running', 'paused', 'shutting-down', 'shutoff', 'crashed'],
  'shutting-down': ['running', 'paused', 'shutting-down', 'shutoff', 'crashed'],
  shutoff: ['starting'],
  crashed: ['starting'],
};

const pairs = DOMAIN_STATES.flatMap((from) => DOMAIN_STATES.map((to) => ({ from, to, ok: allowed[from].includes(to) })));

describe('lifecycle transition table', () => {
  it('covers all six states', () => {
    expect([...DOMAIN_STATES].sort()).toEqual(Object.keys(allowed).sort());
    expect(pairs).toHaveLength(36);
  });

  it.each(pairs.filter((p) => p.ok))('allows $from -> $to', ({ from, to }) => {
    expect(canTransition(from, to)).toBe(true);
    expect(() => checkTransition('vm1', from, to)).not.toThrow();
  });

  it.each(pairs.filter((p) => !p.ok))('refuses $from -> $to with OPERATION_INVALID', ({ from, to }) => {
    expect(canTransition(from, to)).toBe(false);
    let caught: unknown;
    try { checkTransition('vm1', from, to); } catch (err) { caught = err; }
    expect(caught).toBeInstanceOf(VirtqError);
    expect((caught as VirtqError).code).toBe('OPERATION_INVALID');
    expect((caught as VirtqError).message).toContain(`from ${from} to ${to}`);
    expect((caught as VirtqError).details).toEqual({ state: from, to });
  });
});
