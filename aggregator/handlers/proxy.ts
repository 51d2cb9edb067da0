// Per-VM procedures on virtqemud's socket: forwarded by VM name to the VM's shim (the
// compatibility path for clients that only know the host socket). What the catalogue marks
// `hostCache` (getState, getInfo; getDefinition of an inactive VM) is answered here from the
// registry, every other call on an inactive VM is refused; the console stream is piped both ways.
import type { Static } from '@sinclair/typebox';
import { VirtqError, vmProcs, type CallContext, type ProcsWith, type Clock, type DomainInfo, type Fallback, type LastStop, type Program } from '../../protocol/index.js';
import { ProcessStatsCache } from '../../drivers/host/proc.js';
import { isActive, type DomainRecord, type DomainRegistry, type ShimRef } from '../registry.js';
import type { ShimPool } from '../shim-pool.js';

/** The per-VM procedures virtqemud answers from its registry, as the catalogue declares them. */
type HostCached = ProcsWith<typeof vmProcs, 'hostCache'>;

/** The fallback that forwards per-VM calls. */
export function proxyFallback(registry: DomainRegistry, pool: ShimPool, clock: Clock, lastStop: (name: string) => LastStop | undefined = () => undefined): Fallback {
  const procStats = new ProcessStatsCache(() => clock.monotonic());
  // One answer per procedure the catalogue marks `hostCache`; undefined when the registry lacks
  // what it needs, and the call goes on to the shim. A missing or misnamed entry fails tsc.
  const fromRegistry: Readonly<Record<HostCached, (r: DomainRecord) => unknown>> = {
    getState: (r) => ({ state: r.state, reason: r.reason }),
    getDefinition: (r) => r.definition,
    // With CPU time read from /proc as the shim would (and as libvirt does); a lost shim's VM is
    // not answered for (SHIM_UNAVAILABLE), as its info may be stale.
    // A stopped VM's info says how it last stopped (from its journal), whether or not a shim ever reported here.
    getInfo: (r) => {
      const stop = lastStop(r.name);
      if (!isActive(r)) return inactiveInfo(r, stop);
      const info = r.shim?.info === undefined || !r.shimUp ? undefined : infoFromRegistry(r, r.shim, r.shim.info, clock.now(), procStats);
      return info === undefined || stop === undefined ? info : { ...info, lastStop: stop };
    },
  };
  return async (program: Program, proc: string, args: unknown, ctx: CallContext) => {
    const spec = program.procs[proc];
    if (spec === undefined || !spec.perVm) throw new VirtqError('NOT_SUPPORTED', `${program.name}.${proc} is not served by virtqemud`);
    const name = (args as { name: string }).name;
    const r = registry.require(name);
    const cached = Object.hasOwn(fromRegistry, proc) ? fromRegistry[proc as HostCached] : undefined;
    if (!isActive(r) || r.starting) {
      const answer = spec.hostCache?.includes('inactive') === true ? cached?.(r) : undefined;
      if (answer !== undefined) return answer;
      throw new VirtqError('OPERATION_INVALID', `cannot ${proc} VM "${name}": it is ${r.starting ? 'starting' : r.state}`, { details: { state: r.state } });
    }
    // The shim reports every state change before it replies to the call that made it, so the
    // registry's state is the shim's: answered here in one hop, as libvirt answers from its cache.
    if (spec.hostCache?.includes('active') === true) {
      const answer = cached?.(r);
      if (answer !== undefined) return answer;
    }
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

// What is known of a VM with no QEMU: its definition's size, and its journal's last stop. No shim: pid 0.
function inactiveInfo(r: DomainRecord, stop: LastStop | undefined): Static<typeof DomainInfo> {
  const info = r.shim?.info;
  return {
    name: r.name, uuid: r.uuid, state: r.state, reason: r.reason,
    vcpus: r.definition?.vcpus ?? info?.vcpus ?? 0, memoryMiB: r.definition?.memoryMiB ?? info?.memoryMiB ?? 0,
    cpuTimeSec: 0, shimPid: 0, uptimeSec: 0, tainted: info?.tainted ?? false, accel: info?.accel ?? '',
    ...(stop === undefined ? {} : { lastStop: stop }),
  };
}
