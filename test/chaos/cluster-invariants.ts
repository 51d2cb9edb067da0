// The cluster chaos invariants that read the world (cluster-chaos.ts says what each means; the
// report's wording is in cluster-report.ts): S1–S3 at one instant from /proc and the lockspace,
// C1–C3 from the hosts' listings and etcd's claims, M1 after a migration, and a dump of the
// world for a violation's report.
import type { DomainRow } from '../../protocol/index.js';
import type { HolderRecord } from '../../drivers/lock/lockspace.js';
import type { ClusterWorld, QemuOnHost } from './cluster-world.js';

export const ACTIVE = new Set(['starting', 'running', 'paused', 'shutting-down']);

/** A broken invariant: its label (S1, C3, …) and what was seen. */
export interface Problem {
  invariant: string;
  seen: string;
}

/** A migration in flight: its two ends may both have a QEMU of the VM, and both hold the disk open. */
export interface InFlight {
  name: string;
  from: string;
  to: string;
}

/** Two QEMUs of `name` that are the two ends of the migration in flight. */
function endsOf(m: readonly InFlight[], name: string, hosts: string[]): boolean {
  return hosts.length === 2 && m.some((f) => f.name === name && hosts.includes(f.from) && hosts.includes(f.to));
}

/** S1–S3 at one instant, from the live QEMUs and lease holders (ClusterWorld's qemus() and liveLeases()). */
export function instantProblems(qemus: readonly QemuOnHost[], leases: readonly HolderRecord[], m: readonly InFlight[]): Problem[] {
  const out: Problem[] = [];
  const byName = new Map<string, QemuOnHost[]>();
  for (const q of qemus) byName.set(q.name, [...(byName.get(q.name) ?? []), q]);
  for (const [name, qs] of byName) {
    if (qs.length > 1 && !endsOf(m, name, qs.map((q) => q.host))) out.push({ invariant: 'S1', seen: `${name} has ${qs.length} live QEMUs: ${qs.map((q) => `${q.host}:${q.pid}`).join(' ')}` });
  }
  const byDisk = new Map<string, QemuOnHost[]>();
  for (const q of qemus) for (const d of q.rwDisks) byDisk.set(d, [...(byDisk.get(d) ?? []), q]);
  for (const [disk, qs] of byDisk) {
    const one = qs.every((q) => q.name === qs[0]?.name);
    if (qs.length > 1 && !(one && endsOf(m, qs[0]?.name ?? '', qs.map((q) => q.host)))) out.push({ invariant: 'S2', seen: `${disk} is open read-write by ${qs.length} QEMUs: ${qs.map((q) => `${q.name}@${q.host}:${q.pid}`).join(' ')}` });
  }
  const byLease = new Map<string, string[]>();
  for (const l of leases) if (l.mode === 'exclusive') byLease.set(l.resource, [...(byLease.get(l.resource) ?? []), `${l.vm}@${l.host}:holder ${l.holderPid}`]);
  for (const [res, who] of byLease) if (who.length > 1) out.push({ invariant: 'S3', seen: `${res} has ${who.length} live exclusive leases: ${who.join(' ')}` });
  return out;
}

/** C1–C3 now (an empty list: converged). */
export async function clusterProblems(w: ClusterWorld): Promise<Problem[]> {
  const problems: Problem[] = [];
  const p = (invariant: string, seen: string): void => { problems.push({ invariant, seen }); };
  const listings = new Map<string, DomainRow[]>();
  for (const h of w.hosts) {
    const rows = await h.list();
    if (rows === undefined) p('C2', `${h.id}'s virtqemud does not answer its listing`);
    else listings.set(h.id, rows);
  }
  const claims = await w.claims();
  if (claims === undefined) return [...problems, { invariant: 'C3', seen: 'etcd does not answer' }];
  if (problems.length > 0) return problems;
  // C1.
  const seenName = new Map<string, string>();
  const seenUuid = new Map<string, string>();
  for (const [host, rows] of listings) {
    for (const d of rows) {
      const n = seenName.get(d.name);
      if (n !== undefined) p('C1', `${d.name} is listed by ${n} and ${host}`);
      seenName.set(d.name, host);
      const u = seenUuid.get(d.uuid);
      if (u !== undefined) p('C1', `uuid ${d.uuid} is listed by ${u} and ${host}`);
      seenUuid.set(d.uuid, host);
    }
  }
  // C2.
  const qemus = w.qemus();
  for (const [host, rows] of listings) {
    for (const d of rows) {
      if (ACTIVE.has(d.state) && !d.shimUp) p('C2', `${host} lists ${d.name} with its shim lost`);
      if (ACTIVE.has(d.state) && !qemus.some((q) => q.host === host && q.pid === d.qemuPid && q.name === d.name)) p('C2', `${host} lists ${d.name} ${d.state} with QEMU ${d.qemuPid}, which does not run there`);
    }
    for (const q of qemus.filter((x) => x.host === host)) {
      if (!rows.some((d) => ACTIVE.has(d.state) && d.qemuPid === q.pid)) p('C2', `orphan QEMU ${q.name} pid ${q.pid} on ${host}: not listed active there (${JSON.stringify(rows.find((d) => d.name === q.name) ?? 'no row')})`);
    }
  }
  // C3.
  for (const h of w.hosts) if (!claims.hosts.includes(h.id)) p('C3', `${h.id} has no live lease (no hosts/ entry)`);
  for (const [host, rows] of listings) {
    for (const d of rows) {
      const c = claims.names.get(d.name);
      if (c?.host !== host || c.uuid !== d.uuid) p('C3', `${host} lists ${d.name} (${d.uuid}) but etcd's claim is ${JSON.stringify(c ?? 'absent')}`);
      const u = claims.uuids.get(d.uuid);
      if (u?.host !== host || u.name !== d.name) p('C3', `${host} lists uuid ${d.uuid} (${d.name}) but etcd's claim is ${JSON.stringify(u ?? 'absent')}`);
    }
  }
  for (const [name, c] of claims.names) if (seenName.get(name) !== c.host) p('C3', `etcd says ${c.host} holds ${name}, listed by ${seenName.get(name) ?? 'no host'}`);
  for (const [uuid, c] of claims.uuids) if (seenUuid.get(uuid) !== c.host) p('C3', `etcd says ${c.host} holds uuid ${uuid} (${c.name}), listed by ${seenUuid.get(uuid) ?? 'no host'}`);
  return problems;
}

/** M1 for `name`, which ran before a migration: one live QEMU, listed active by its host, claimed by it in etcd. */
export async function migratedProblems(w: ClusterWorld, name: string): Promise<Problem[]> {
  const qs = w.qemus().filter((q) => q.name === name);
  if (qs.length !== 1) return [{ invariant: 'M1', seen: `${name} has ${qs.length} live QEMUs after its migration${qs.length === 0 ? '' : `: ${qs.map((q) => `${q.host}:${q.pid}`).join(' ')}`}` }];
  const q = qs[0] as QemuOnHost;
  const host = w.hosts.find((h) => h.id === q.host);
  const row = (await host?.list())?.find((d) => d.name === name);
  const claim = (await w.claims())?.names.get(name);
  const out: Problem[] = [];
  if (row === undefined || !ACTIVE.has(row.state) || row.qemuPid !== q.pid) out.push({ invariant: 'M1', seen: `${name}'s QEMU ${q.pid} runs on ${q.host}, which lists it ${JSON.stringify(row ?? 'not at all')}` });
  if (claim?.host !== q.host) out.push({ invariant: 'M1', seen: `${name}'s QEMU runs on ${q.host} but etcd's claim is ${JSON.stringify(claim ?? 'absent')}` });
  return out;
}

/** The world now, as text for a report: each host's listing, etcd's claims and host entries, the QEMUs and leases. */
export async function worldText(w: ClusterWorld): Promise<string> {
  const lines: string[] = [];
  for (const h of w.hosts) {
    const rows = await h.list(5000).catch(() => undefined);
    lines.push(`${h.id} (virtqemud ${h.up ? `pid ${h.daemon?.proc.pid}` : 'down'}) lists: ${rows === undefined ? 'no answer within 5 s' : rows.length === 0 ? 'nothing' : ''}`);
    for (const d of rows ?? []) lines.push(`  ${d.name} ${d.uuid} ${d.state} qemu ${d.qemuPid ?? '-'} shim ${d.shimUp ? 'up' : 'lost'} ${d.persistent ? 'persistent' : 'transient'}`);
  }
  const claims = await w.claims().catch(() => undefined);
  if (claims === undefined) lines.push('etcd claims: etcd does not answer within 5 s');
  else {
    lines.push(`etcd hosts/ (live leases): ${claims.hosts.join(', ') || 'none'}`);
    lines.push(`etcd names/: ${[...claims.names].map(([n, c]) => `${n}→${c.host} (${c.uuid})`).join(', ') || 'none'}`);
    lines.push(`etcd uuids/: ${[...claims.uuids].map(([u, c]) => `${u}→${c.host} (${c.name})`).join(', ') || 'none'}`);
  }
  lines.push(`live QEMUs: ${w.qemus().map((q) => `${q.name}@${q.host}:${q.pid} rw[${q.rwDisks.map((d) => d.slice(d.lastIndexOf('/') + 1)).join(',')}]`).join(' ') || 'none'}`);
  lines.push(`live lease holders: ${w.liveLeases().map((l) => `${l.resource.slice(l.resource.lastIndexOf('/') + 1)} ${l.mode} ${l.vm}@${l.host}:${l.holderPid}`).join(' ') || 'none'}`);
  return lines.join('\n');
}
