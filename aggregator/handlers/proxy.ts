// Per-VM procedures on virtqemud's socket: forwarded by VM name to the VM's shim (the
// compatibility path for clients that only know the host socket). getState and getInfo, and
// every call on an inactive VM, are answered here from the registry; the console stream is piped
// both ways.
import type { Static } from '@sinclair/typebox';
import { VirtqError, type CallContext, type Clock, type DomainInfo, type Fallback, type Program } from '../../protocol/index.js';
import { ProcessStatsCache } from '../../drivers/host/proc.js';
import { isActive, type DomainRecord, type DomainRegistry, type ShimRef } from '../registry.js';
import type { ShimPool } from '../shim-pool.js';

/** The fallback that forwards per-VM calls. */
export function proxyFallback(registry: DomainRegistry, pool: ShimPool, clock: Clock): Fallback {
  const procStats = new ProcessStatsCache(() => clock.monotonic());
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
    // So is getInfo, with CPU time read from /proc as the shim would (and as libvirt does).
    if (proc === 'getInfo' && r.shim.info !== undefined) return infoFromRegistry(r, r.shim, r.shim.info, clock.now(), procStats);
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

function infoFromRegistry(r: DomainRecord, shim: ShimRef, info: NonNullable<ShimRef['info']>, now: number, procStats: ProcessStatsCache): Static<typeof DomainInfo> {
  const pid = r.qemuPid;
  return {
    name: r.name, uuid: r.uuid, state: r.state, reason: r.reason, vcpus: info.vcpus, memoryMiB: info.memoryMiB,
    cpuTimeSec: pid === undefined ? 0 : procStats.get(pid).cpuTimeSec,
    ...(pid === undefined ? {} : { qemuPid: pid }),
    shimPid: shim.pid, uptimeSec: info.qemuStartedAt === undefined ? 0 : (now - info.qemuStartedAt) / 1000,
    tainted: info.tainted, accel: info.accel,
  };
}
