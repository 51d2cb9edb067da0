// Per-VM procedures on virtqemud's socket: forwarded by VM name to the VM's shim (the
// compatibility path for clients that only know the host socket). Inactive VMs are answered
// here from the registry; the console stream is piped both ways.
import { VirtqError, type CallContext, type Fallback, type Program } from '../../protocol/index.js';
import { isActive, type DomainRegistry } from '../registry.js';
import type { ShimPool } from '../shim-pool.js';

/** The fallback that forwards per-VM calls. */
export function proxyFallback(registry: DomainRegistry, pool: ShimPool): Fallback {
  return async (program: Program, proc: string, args: unknown, ctx: CallContext) => {
    const spec = program.procs[proc];
    if (spec === undefined || !spec.perVm) throw new VirtqError('NOT_SUPPORTED', `${program.name}.${proc} is not served by virtqemud`);
    const name = (args as { name: string }).name;
    const r = registry.require(name);
    if (!isActive(r) || r.starting) {
      if (proc === 'getState') return { state: r.state, reason: r.reason };
      if (proc === 'getDefinition' && r.definition !== undefined) return r.definition;
      throw new VirtqError('OPERATION_INVALID', `cannot ${proc} VM "${name}": it is ${r.starting ? 'starting' : r.state}`, { details: { state: r.state } });
    }
    // The shim reports every state change before it replies to the call that made it, so the
    // registry's state is the shim's: answered here in one hop, as libvirt answers from its cache.
    if (proc === 'getState') return { state: r.state, reason: r.reason };
    if (r.shim === undefined || !r.shimUp) {
      throw new VirtqError('SHIM_UNAVAILABLE', `the shim of VM "${name}" is lost; the VM may still run (re-attach with: virtq-shim --attach ${name})`);
    }
    const client = await pool.get(r.shim.socket, name);
    if (!spec.stream) return client.call(program.name, proc, args);
    const upstream = await client.openStream(program.name, proc, args);
    const downstream = ctx.openStream();
    void (async () => {
      for await (const chunk of upstream) downstream.write(chunk);
      downstream.end();
    })();
    void (async () => {
      for await (const chunk of downstream) upstream.write(chunk);
      upstream.end();
    })();
    return {};
  };
}
