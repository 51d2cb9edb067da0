// The server's one access check beyond the socket's: the loaded access rules applied to every
// call (PERMISSION_DENIED naming the procedure and the rule), to the host listing (rows of VMs
// the client may not read are left out and counted) and to lifecycle events. The rules are
// swapped whole on reload; calls already running keep the decision they got.
import { AclRules, describeIdentity, identityOf, isPerVmFiltered, vmOfCall, type AclIdentity } from './acl-rules.js';
import type { Program, ProcSpec } from './catalogue.js';
import { VirtqError } from './errors.js';
import type { ServerClient } from './server-client.js';

/** What the server asks of an access policy. */
export interface AccessPolicy {
  /** Throws PERMISSION_DENIED when the rules refuse the call. */
  check(client: ServerClient, program: Program, proc: string, spec: ProcSpec, args: unknown): void;
  /** The reply as the client may see it (the host listing without the VMs it may not read). */
  filterReply(client: ServerClient, prog: string, proc: string, result: unknown): unknown;
  /** True when an event must not reach the client (about a VM it may not read). */
  hidesEvent(client: ServerClient, prog: string, body: unknown): boolean;
  /** True when some rule matches on uid or gid: unix clients' credentials must then be looked up. */
  readonly needsUnixCreds?: boolean;
}

/** A refused call, for the daemon's metric and log. */
export interface Denial {
  prog: string;
  proc: string;
  rule: string;
  identity: string;
  vm: string | undefined;
}

// A listing row is hidden when this read of its VM would be refused.
const READ_SPEC = { readonly: true, stream: false } as const;
const READ_PROBE = { program: { name: 'virtq' }, proc: 'getState', spec: READ_SPEC };

/** The rules in force and how unix clients are identified. */
export class AclPolicy implements AccessPolicy {
  constructor(
    private rulesNow: AclRules,
    private readonly unixCreds: (client: ServerClient) => { uid: number; gid: number },
    private readonly onDenied: (d: Denial) => void,
  ) {}

  /** The rules in force. */
  get rules(): AclRules {
    return this.rulesNow;
  }

  /** Puts `rules` in force for every call from now on. */
  replace(rules: AclRules): void {
    this.rulesNow = rules;
  }

  get needsUnixCreds(): boolean {
    return this.rulesNow.rules.some((r) => r.match.uid !== undefined || r.match.gid !== undefined);
  }

  private identity(client: ServerClient): AclIdentity {
    return identityOf(client.access, client.peer, client.peer.transport === 'unix' ? this.unixCreds(client) : { uid: -1, gid: -1 });
  }

  check(client: ServerClient, program: Program, proc: string, spec: ProcSpec, args: unknown): void {
    // Fail closed: rules on uid/gid cannot be applied to a peer whose credentials are unknown.
    if (client.unixCreds === null && client.access !== 'ro' && client.peer.transport === 'unix' && this.needsUnixCreds) {
      throw new VirtqError('PERMISSION_DENIED', `${program.name}.${proc} is denied: the access rules match on uid/gid and this connection's peer credentials cannot be learned (its process is gone, in another pid namespace, or shares the socket with another user)`, { details: { procedure: `${program.name}.${proc}`, rule: 'peer-unknown' } });
    }
    const identity = this.identity(client);
    const vm = vmOfCall(program.name, args);
    const d = this.rulesNow.decide(identity, { program, proc, spec, vm, perVmFiltered: isPerVmFiltered(program.name, proc) });
    if (d.allowed) return;
    const rule = d.rule as string;
    const who = describeIdentity(identity);
    this.onDenied({ prog: program.name, proc, rule, identity: who, vm });
    throw new VirtqError('PERMISSION_DENIED', `${program.name}.${proc}${vm === undefined ? '' : ` on "${vm}"`} is denied to ${who} by access rule ${rule}`, { details: { procedure: `${program.name}.${proc}`, rule } });
  }

  filterReply(client: ServerClient, prog: string, proc: string, result: unknown): unknown {
    if (prog !== 'virtq' || proc !== 'listDomains') return result;
    const rows = (result as { domains?: Array<{ name: string }> }).domains;
    if (!Array.isArray(rows)) return result;
    const identity = this.identity(client);
    const visible = rows.filter((r) => this.rulesNow.decide(identity, { ...READ_PROBE, vm: r.name }).allowed);
    return visible.length === rows.length ? result : { ...(result as object), domains: visible, hidden: rows.length - visible.length };
  }

  hidesEvent(client: ServerClient, prog: string, body: unknown): boolean {
    if (prog !== 'virtq' || typeof body !== 'object' || body === null) return false;
    const name = (body as { name?: unknown }).name;
    if (typeof name !== 'string') return false;
    return !this.rulesNow.decide(this.identity(client), { ...READ_PROBE, vm: name }).allowed;
  }
}
