// A daemon's access rules in force: loaded at start, reloaded on `config-reload` or when the
// file path changes, refused whole (old rules kept) when the file is bad or would lock the
// daemon's owner out of its admin socket. Denials are counted and logged here.
import { Counter, type Registry } from 'prom-client';
import {
  AclPolicy, AclRules, VirtqError, adminProgram,
  type Logger, type RpcServer, type ServerClient,
} from '../../protocol/index.js';
import { readAclFile } from './acl-file.js';
import { metricCatalogue as m } from '../metrics-catalogue.js';

/** The unix credentials rules see for local clients (see decision 0022: the socket owner's). */
export type UnixCreds = (client: ServerClient) => { uid: number; gid: number };

/** The access-rules state of one daemon. */
export class AclGuard {
  private readonly policy: AclPolicy;
  private path: string;

  constructor(private readonly server: RpcServer, file: string, private readonly owner: { uid: number; gid: number }, unixCreds: UnixCreds, registry: Registry, private readonly log: Logger) {
    this.path = file;
    const denied = new Counter({ name: m.rpcDenied.name, help: m.rpcDenied.help, labelNames: ['procedure', 'rule'], registers: [registry] });
    this.policy = new AclPolicy(new AclRules([]), unixCreds, (d) => {
      denied.inc({ procedure: `${d.prog}.${d.proc}`, rule: d.rule });
      log.warn({ msgId: 'access-denied', procedure: `${d.prog}.${d.proc}`, rule: d.rule, identity: d.identity, vm: d.vm }, 'call denied by access rule');
    });
  }

  /** The rules file. */
  get file(): string {
    return this.path;
  }

  /** How many rules are in force. */
  get count(): number {
    return this.policy.rules.rules.length;
  }

  /**
   * (Re)reads the rules from `file` (default the current one) and puts them in force; a missing
   * file means no rules. Throws (keeping the old rules and path) for a bad file or a lock-out.
   */
  async load(file: string = this.path): Promise<{ file: string; rules: number }> {
    const rules = (await readAclFile(file)) ?? new AclRules([]);
    // No rules deny nothing: the check only matters for a file that has some.
    if (rules.rules.length > 0) this.refuseLockout(rules, file);
    this.policy.replace(rules);
    this.path = file;
    this.server.accessPolicy = rules.rules.length === 0 ? undefined : this.policy;
    this.log.info({ file, rules: rules.rules.length }, 'access rules loaded');
    return { file, rules: rules.rules.length };
  }

  // The daemon's owner must keep every admin procedure on the admin socket: else no reload could undo the rules.
  private refuseLockout(rules: AclRules, file: string): void {
    const identity = { kind: 'unix', socket: 'admin', ...this.owner } as const;
    for (const [proc, spec] of Object.entries(adminProgram.procs)) {
      const d = rules.decide(identity, { program: adminProgram, proc, spec, vm: undefined });
      if (!d.allowed) {
        throw new VirtqError('INVALID_ARG', `${file}: rule ${d.rule as string} would deny admin.${proc} to the daemon's owner (uid ${this.owner.uid}) on the admin socket, locking the admin out; the rules were not loaded`, { details: { rule: d.rule, procedure: `admin.${proc}` } });
      }
    }
  }
}
