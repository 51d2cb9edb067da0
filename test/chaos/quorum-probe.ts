// Q1 of the cluster chaos: with two of three etcd members stopped, every host comes to refuse a
// define with CLUSTER_UNAVAILABLE. Exact about the window: the probes go out only once every
// thread of both members is stopped (stopped.ts), so no claim Txn they cause can commit until
// quorum is back; a define accepted anyway is then looked up in etcd after the resume — absent,
// the host accepted a define without a committed claim; present, when and by whom it was made.
import { VirtqError, delay, systemClock } from '../../protocol/index.js';
import type { ClusterHost, ClusterWorld } from './cluster-world.js';

const clock = systemClock();

/** What the probes found: the hosts refusing, the hosts that accepted, the hosts that did neither within 30 s. */
export interface ProbeResult {
  refusing: string[];
  accepted: ClusterHost[];
  silent: string[];
}

/** Defines `name` on every host, again every 250 ms while the answer is neither ok nor CLUSTER_UNAVAILABLE, for 30 s. */
export async function probeDefines(w: ClusterWorld, name: string, disk: string): Promise<ProbeResult> {
  const r: ProbeResult = { refusing: [], accepted: [], silent: [] };
  await Promise.all(w.hosts.map(async (h) => {
    const end = clock.monotonic() + 30_000;
    while (clock.monotonic() < end) {
      const code = await (await h.api()).define({ definition: w.definition(name, disk) }).then(() => 'ok', (e: unknown) => VirtqError.from(e).code);
      if (code === 'ok') { r.accepted.push(h); return; }
      if (code === 'CLUSTER_UNAVAILABLE') { r.refusing.push(h.id); return; }
      await delay(clock, 250);
    }
    r.silent.push(h.id);
  }));
  return r;
}

/** After quorum is back: what etcd holds for an accepted probe `name` (read for up to 30 s), as text for the report. */
export async function acceptedClaim(w: ClusterWorld, name: string, revisionBefore: string | undefined): Promise<string> {
  const end = clock.monotonic() + 30_000;
  while (clock.monotonic() < end) {
    const kv = await w.nameKey(name);
    if (kv === null) return `after quorum came back etcd holds NO claim of ${name}: the define was accepted without a committed claim (revision before the stop: ${revisionBefore ?? '?'})`;
    if (kv !== undefined) return `after quorum came back etcd holds ${kv.value}, created at revision ${kv.created} (revision before the stop: ${revisionBefore ?? '?'}); see the host's CLUSTER_CLAIMED log line`;
    await delay(clock, 500);
  }
  return 'etcd did not answer within 30 s of quorum coming back';
}
