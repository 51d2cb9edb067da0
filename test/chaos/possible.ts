// What a keyed store (volumes by name, secrets by UUID) may hold, given the replies seen. Each
// key has a set of possible states. An operation is a transition: from a state, the states it
// leads to when it succeeds (none: it cannot succeed from there). A certain, unraced success
// maps the set through it; a certain failure leaves it. An uncertain reply (the daemon was killed,
// the client hung up) or a reply raced by other calls on the same key makes the transition
// "maybe applied": the set is closed under every such transition once the key is quiet, which
// covers every order the daemon may have applied them in. The set only grows where the replies
// leave a doubt, so a state found outside it is a lost or corrupt item.

/** From one state, the states a successful operation leads to. */
export type Transition<S> = (s: S) => S[];

/** One call in flight on a key. */
export interface Pending<S> {
  readonly key: string;
  readonly t: Transition<S>;
  overlapped: boolean;
}

interface Entry<S> {
  possible: Map<string, S>;
  inflight: Set<Pending<S>>;
  /** Transitions maybe applied since the key was last quiet. */
  maybe: Array<Transition<S>>;
}

/** Beyond this many possible states of one key the closure stops (said in `notes`). */
const MAX_STATES = 256;

/** The possible states of every key. */
export class PossibleStates<S> {
  private readonly entries = new Map<string, Entry<S>>();
  /** Closures cut short: the model got looser than it should (a note, not a violation). */
  readonly notes: string[] = [];

  constructor(private readonly keyOf: (s: S) => string, private readonly initial: S) {}

  private entry(key: string): Entry<S> {
    let e = this.entries.get(key);
    if (e === undefined) {
      e = { possible: new Map([[this.keyOf(this.initial), this.initial]]), inflight: new Set(), maybe: [] };
      this.entries.set(key, e);
    }
    return e;
  }

  begin(key: string, t: Transition<S>): Pending<S> {
    const e = this.entry(key);
    const p: Pending<S> = { key, t, overlapped: e.inflight.size > 0 };
    for (const o of e.inflight) o.overlapped = true;
    e.inflight.add(p);
    return p;
  }

  /**
   * Ends a call: `ok` it succeeded, `failed` it certainly did nothing, `unknown` it may have.
   * `effect` replaces the call's transition (what it became: applied, then undone by a restart).
   * Returns false when a certain success is impossible from every possible state (the daemon did
   * what the model says it could not: the caller reports it).
   */
  end(p: Pending<S>, outcome: 'ok' | 'failed' | 'unknown', effect: Transition<S> = p.t): boolean {
    const e = this.entry(p.key);
    e.inflight.delete(p);
    let consistent = true;
    if (outcome === 'ok' && !p.overlapped && e.maybe.length === 0) {
      const next = this.apply(e.possible, effect);
      if (next.size === 0) consistent = false;
      else e.possible = next;
    } else if (outcome !== 'failed') {
      if (outcome === 'ok' && this.apply(this.reachable(p.key), effect).size === 0) consistent = false;
      e.maybe.push(effect);
    }
    if (e.inflight.size === 0 && e.maybe.length > 0) {
      e.possible = this.close(e.possible, e.maybe, p.key);
      e.maybe = [];
    }
    return consistent;
  }

  /** Applies `t` to every possible state of every key now (a daemon restart's effect). */
  everywhere(t: Transition<S>): void {
    for (const e of this.entries.values()) {
      e.possible = this.apply(e.possible, t);
      e.maybe = e.maybe.map((m) => (s: S) => m(s).flatMap(t));
    }
  }

  /** What `key` may hold now or once the calls in flight on it end. */
  reachable(key: string): Map<string, S> {
    const e = this.entry(key);
    return this.close(e.possible, [...e.maybe, ...[...e.inflight].map((p) => p.t)], key);
  }

  /** Every key with its possible states (once quiet). */
  all(): Array<[string, Map<string, S>]> {
    return [...this.entries].map(([k, e]) => [k, e.possible]);
  }

  private apply(from: Map<string, S>, t: Transition<S>): Map<string, S> {
    const out = new Map<string, S>();
    for (const s of from.values()) for (const n of t(s)) out.set(this.keyOf(n), n);
    return out;
  }

  /** `from` plus every state reachable through the transitions, each taken any number of times. */
  private close(from: Map<string, S>, ts: ReadonlyArray<Transition<S>>, key: string): Map<string, S> {
    const out = new Map(from);
    let frontier = [...from.values()];
    while (frontier.length > 0) {
      const next: S[] = [];
      for (const s of frontier) {
        for (const t of ts) {
          for (const n of t(s)) {
            const k = this.keyOf(n);
            if (out.has(k)) continue;
            if (out.size >= MAX_STATES) {
              this.notes.push(`${key}: more than ${MAX_STATES} possible states; the model stopped adding`);
              return out;
            }
            out.set(k, n);
            next.push(n);
          }
        }
      }
      frontier = next;
    }
    return out;
  }
}
