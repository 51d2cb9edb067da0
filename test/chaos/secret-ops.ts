// The secret operations of a chaos iteration, through virtsecretd's public client: define
// (private, ephemeral or not), set a known value, read it back (getValue, or useValue for a
// private one) against the model, undefine, list, and values sent where they must be refused (a
// malformed UUID, a secret that does not exist) — every value is remembered, and none may reach
// a log.
import type { SecretClient } from '../../client/secret-client.js';
import { StorageContext, attempt, modelOutcome, type Outcome, type StorageOp, OP_NAMES } from './storage-context.js';
import { checkRead, defineSecret, secretdRestart, setSecret, undefineSecret, type SecretState } from './storage-model.js';
import type { Transition } from './possible.js';

/** The secrets chaos works with (fixed UUIDs: every iteration has a fresh root). */
export const SECRETS = [0, 1, 2, 3].map((i) => `c4a05000-0000-4000-8000-00000000000${i}`);
const NOWHERE = 'c4a05000-0000-4000-8000-0000000000ff';

const USUAL: ReadonlySet<string> = new Set(['NO_SECRET', 'PERMISSION_DENIED', 'OPERATION_INVALID', 'INVALID_ARG', 'NO_SPACE', 'CONNECTION_CLOSED', 'NO_CONNECT']);

const shownStates = (states: SecretState[]): string => states.map((s) => JSON.stringify(s)).join(' | ');

/** Runs secret operations and feeds what they learn to the model. */
export class SecretOps {
  constructor(private readonly ctx: StorageContext) {}

  /** The secret `op` acts on, chosen once (a batch may set it to race another call). */
  target(op: StorageOp): string {
    // A define mostly makes a new secret, one in three redefines one (private, ephemeral or not).
    op.name ??= this.aim(op, op.kind === 'secretDefine' && op.idx2 % 3 !== 0 ? 'free' : 'defined');
    return op.name;
  }

  private aim(op: StorageOp, want: 'defined' | 'free' | 'any'): string {
    if (!op.aim || want === 'any') return SECRETS[op.idx % SECRETS.length] as string;
    const ids = SECRETS.filter((u) => {
      const r = [...this.ctx.secrets.reachable(u).values()];
      return want === 'free' ? r.every((s) => s === 'none') : r.every((s) => s !== 'none');
    });
    return ids.length === 0 ? SECRETS[op.idx % SECRETS.length] as string : ids[op.idx % ids.length] as string;
  }

  private async call<T>(op: StorageOp, fn: (c: SecretClient) => Promise<T>): Promise<{ out: Outcome<T>; hungUp: boolean }> {
    let fresh: SecretClient | undefined;
    let timer: NodeJS.Timeout | undefined;
    const out = await attempt(async () => {
      if (op.hangUpMs === undefined) return fn(await this.ctx.secret(op.slot));
      fresh = await this.ctx.side.secret();
      const f = fresh;
      timer = setTimeout(() => f.close(), op.hangUpMs);
      return fn(f);
    });
    if (timer !== undefined) clearTimeout(timer);
    fresh?.close();
    return { out, hungUp: fresh !== undefined };
  }

  private async change(op: StorageOp, what: string, uuid: string, t: Transition<SecretState>, fn: (c: SecretClient) => Promise<unknown>): Promise<void> {
    const p = this.ctx.secrets.begin(uuid, t);
    const gen = this.ctx.gen.virtsecretd;
    const { out, hungUp } = await this.call(op, fn);
    // Across a kill of virtsecretd the call may have been applied, then undone by the restart.
    const restarted = gen !== this.ctx.gen.virtsecretd;
    const outcome = modelOutcome(out, hungUp);
    const ended = restarted ? this.ctx.secrets.end(p, outcome === 'failed' ? 'failed' : 'unknown', (s) => t(s).flatMap(secretdRestart)) : this.ctx.secrets.end(p, outcome);
    if (!ended) {
      this.ctx.hooks.violation(`${what} succeeded, which none of the states the model allows permits (${shownStates([...this.ctx.secrets.reachable(uuid).values()])})`);
    }
    this.done(op, what, out, hungUp);
  }

  private done(op: StorageOp, what: string, out: Outcome<unknown>, hungUp: boolean): void {
    this.ctx.outcome(what, out, USUAL);
    this.ctx.hooks.trace(`${what}${hungUp ? ` (hang up after ${op.hangUpMs} ms)` : ''} → ${StorageContext.shown(out)}`);
  }

  async run(op: StorageOp): Promise<void> {
    this.ctx.hooks.count('ops', OP_NAMES[op.kind]);
    switch (op.kind) {
      case 'secretDefine': {
        const uuid = this.target(op);
        // The draws of a volume op, read for a secret: `flag` private, one size in three ephemeral.
        const priv = op.flag;
        const eph = op.size % 3 === 0;
        await this.change(op, `secret-define ${uuid.slice(-2)}${priv ? ' private' : ''}${eph ? ' ephemeral' : ''}`, uuid, defineSecret(priv, eph),
          (c) => c.api.defineSecret({ definition: { uuid, description: `chaos ${op.idx}`, private: priv, ephemeral: eph } }));
        return;
      }
      case 'secretSet': {
        const uuid = this.target(op);
        this.ctx.values.add(op.value);
        await this.change(op, `secret-set-value ${uuid.slice(-2)} ${op.value}`, uuid, setSecret(op.value), (c) => c.api.setValue({ uuid, value: Buffer.from(op.value) }));
        return;
      }
      case 'secretUndefine': {
        const uuid = this.target(op);
        await this.change(op, `secret-undefine ${uuid.slice(-2)}`, uuid, undefineSecret, (c) => c.api.undefineSecret({ uuid }));
        return;
      }
      case 'secretGet': {
        const problem = await this.read(op, this.target(op), op.flag);
        if (problem !== undefined) this.ctx.hooks.violation(problem);
        return;
      }
      case 'secretList':
        return this.list(op);
      case 'secretBad': {
        // A value sent with a malformed UUID or to no secret: refused, and never echoed anywhere.
        const uuid = op.flag ? `not-a-uuid-${op.idx}` : NOWHERE;
        this.ctx.values.add(op.value);
        const { out, hungUp } = await this.call(op, (c) => c.api.setValue({ uuid, value: Buffer.from(op.value) }));
        this.done(op, `secret-set-value ${uuid} (refused)`, out, hungUp);
        if (out.ok) this.ctx.hooks.violation(`setValue on ${uuid} succeeded`);
        return;
      }
      default:
        throw new Error(`not a secret operation: ${op.kind}`);
    }
  }

  /**
   * Reads a value (getValue, or useValue which private secrets also answer) and returns what is
   * wrong with it given what the secret may hold; `quiet` for the final checks (not counted).
   */
  async read(op: StorageOp, uuid: string, use: boolean, quiet = false): Promise<string | undefined> {
    const before = [...this.ctx.secrets.reachable(uuid).values()];
    const { out, hungUp } = await this.call(op, async (c) => Buffer.from((use ? await c.api.useValue({ uuid, consumer: { purpose: 'chaos check' } }) : await c.api.getValue({ uuid })).value).toString());
    const states = [...before, ...this.ctx.secrets.reachable(uuid).values()];
    if (!quiet) this.done(op, `secret-${use ? 'use' : 'get'}-value ${uuid.slice(-2)}`, out, hungUp);
    if (!out.ok && out.uncertain) return quiet ? `secret ${uuid}: ${out.code}: ${out.message}` : undefined;
    // useValue hands a private secret's value too: read the states as not private.
    const seen = use ? states.map((s) => (s === 'none' ? s : { ...s, p: false })) : states;
    const problem = checkRead(seen, out.ok ? { ok: true, value: out.value } : { ok: false, code: out.code });
    return problem === undefined ? undefined : `secret ${uuid}: ${problem}`;
  }

  private async list(op: StorageOp): Promise<void> {
    const before = new Map(SECRETS.map((u) => [u, [...this.ctx.secrets.reachable(u).values()]]));
    const { out, hungUp } = await this.call(op, (c) => c.api.listSecrets({}));
    this.done(op, 'secret-list', out, hungUp);
    if (!out.ok) return;
    const listed = new Set(out.value.secrets.map((s) => s.uuid));
    for (const u of listed) if (!SECRETS.includes(u)) this.ctx.hooks.violation(`secret-list shows ${u}, which was never defined`);
    for (const u of SECRETS) {
      const states = [...(before.get(u) ?? []), ...this.ctx.secrets.reachable(u).values()];
      if (listed.has(u) && !states.some((s) => s !== 'none')) this.ctx.hooks.violation(`secret-list shows ${u}, which the model says cannot exist (${shownStates(states)})`);
      if (!listed.has(u) && !states.includes('none')) this.ctx.hooks.violation(`secret-list misses ${u}, which must exist (${shownStates(states)})`);
    }
  }
}
