// Access rules: an ordered list of {match identity, procedures, VMs?, allow|deny}, first match
// wins, no match keeps the socket's own access (the catalogue's read-only ACL). Pure: the
// daemon loads the file (daemon/acl/), the server asks `decide` for every call in one place.
import { Type, type Static } from '@sinclair/typebox';
import { PROCEDURE_CLASSES, procedureClasses } from './acl-classes.js';
import type { Program, ProcSpec } from './catalogue.js';
import type { Access, Peer } from './server-client.js';

/** Who a rule matches: every field given must match; `{}` matches anyone. */
export const AclMatch = Type.Object({
  uid: Type.Optional(Type.Integer({ minimum: 0, description: 'the unix user of a local client' })),
  gid: Type.Optional(Type.Integer({ minimum: 0, description: 'the unix group of a local client' })),
  x509: Type.Optional(Type.String({ minLength: 1, maxLength: 1024, description: 'a TLS client certificate subject DN pattern, * matching any run of characters, e.g. "O=example,CN=*"' })),
  anonymousRo: Type.Optional(Type.Literal(true, { description: 'clients of the read-only unix socket' })),
}, { additionalProperties: false });

/** One rule. */
export const AclRule = Type.Object({
  id: Type.Optional(Type.String({ minLength: 1, maxLength: 128, description: 'a name for the rule in errors and logs (default: its position, #1, #2, ...)' })),
  match: AclMatch,
  procedures: Type.Array(Type.String({ minLength: 1, maxLength: 128 }), { minItems: 1, description: `procedure names (getState or virtq.getState), classes (${PROCEDURE_CLASSES.join(', ')}) or *` }),
  vms: Type.Optional(Type.Array(Type.String({ minLength: 1, maxLength: 128 }), { minItems: 1, description: 'VM names or patterns with *; the rule then applies only to calls naming such a VM' })),
  action: Type.Union([Type.Literal('allow'), Type.Literal('deny')]),
}, { additionalProperties: false });

/** A rules file. */
export const AclFile = Type.Object({
  $schema: Type.Optional(Type.String()),
  rules: Type.Array(AclRule, { maxItems: 10_000 }),
}, { additionalProperties: false, title: 'virtq access rules' });
export type AclRule = Static<typeof AclRule>;
export type AclFile = Static<typeof AclFile>;

/** Who a client is, as rules see it. */
export type AclIdentity =
  | { kind: 'unix'; socket: Access; uid: number; gid: number }
  | { kind: 'x509'; dn: string };

/** A call as rules see it. */
export interface AclCall {
  program: Pick<Program, 'name'>;
  proc: string;
  spec: Pick<ProcSpec, 'readonly' | 'stream'>;
  /** The VM the call names, if any. */
  vm: string | undefined;
  /** True for calls whose answer is filtered VM by VM (the listing, event subscriptions): rules with `vms` apply to them. */
  perVmFiltered?: boolean;
}

/** The calls whose answers are filtered per VM rather than refused. */
export function isPerVmFiltered(program: string, proc: string): boolean {
  return program === 'virtq' && (proc === 'listDomains' || proc === 'subscribeEvents');
}

/** What decided a call: the rule (its id or `#N`), or nothing (the default). */
export interface AclDecision {
  allowed: boolean;
  rule: string | undefined;
}

/** The identity of a connected client: its certificate's DN, or the unix credentials of its socket. */
export function identityOf(access: Access, peer: Peer, unixCreds: { uid: number; gid: number }): AclIdentity {
  return peer.transport === 'tls' ? { kind: 'x509', dn: peer.dn } : { kind: 'unix', socket: access, ...unixCreds };
}

/** The identity as log lines and errors print it. */
export function describeIdentity(id: AclIdentity): string {
  if (id.kind === 'x509') return `x509 "${id.dn}"`;
  return id.socket === 'ro' ? 'anonymous-ro' : `unix uid ${id.uid} gid ${id.gid}`;
}

function glob(pattern: string): RegExp {
  return new RegExp(`^${pattern.split('*').map((p) => p.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*')}$`);
}

interface Compiled {
  id: string;
  matches(identity: AclIdentity): boolean;
  procedures: ReadonlySet<string>;
  vms: RegExp[] | undefined;
  allow: boolean;
}

/** A compiled, immutable rule set. */
export class AclRules {
  private readonly compiled: Compiled[];

  constructor(readonly rules: readonly AclRule[]) {
    this.compiled = rules.map((r, i) => {
      const dn = r.match.x509 === undefined ? undefined : glob(r.match.x509);
      const m = r.match;
      return {
        id: r.id ?? `#${i + 1}`,
        procedures: new Set(r.procedures),
        vms: r.vms?.map(glob),
        allow: r.action === 'allow',
        matches: (id: AclIdentity) => {
          if (m.anonymousRo === true && !(id.kind === 'unix' && id.socket === 'ro')) return false;
          if ((m.uid !== undefined || m.gid !== undefined) && (id.kind !== 'unix' || id.socket === 'ro')) return false;
          if (m.uid !== undefined && id.kind === 'unix' && id.uid !== m.uid) return false;
          if (m.gid !== undefined && id.kind === 'unix' && id.gid !== m.gid) return false;
          if (dn !== undefined && (id.kind !== 'x509' || !dn.test(id.dn))) return false;
          return true;
        },
      };
    });
  }

  /** The first rule matching `identity` and `call` decides; none: allowed (the socket's own check already ran). */
  decide(identity: AclIdentity, call: AclCall): AclDecision {
    const names = [`${call.program.name}.${call.proc}`, call.proc, ...procedureClasses(call.program, call.proc, call.spec), '*'];
    for (const r of this.compiled) {
      if (!r.matches(identity)) continue;
      if (!names.some((n) => r.procedures.has(n))) continue;
      if (r.vms !== undefined && (call.vm === undefined ? call.perVmFiltered !== true : !r.vms.some((p) => p.test(call.vm as string)))) continue;
      return { allowed: r.allow, rule: r.id };
    }
    return { allowed: true, rule: undefined };
  }
}

/** The VM a call names: `name` of a per-VM or host call, or the name in a definition. */
export function vmOfCall(program: string, args: unknown): string | undefined {
  if (program !== 'virtq' || typeof args !== 'object' || args === null) return undefined;
  const a = args as { name?: unknown; definition?: { name?: unknown } };
  if (typeof a.name === 'string') return a.name;
  if (typeof a.definition?.name === 'string') return a.definition.name;
  return undefined;
}
