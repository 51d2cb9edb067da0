// What a hypervisor exit means for the VM: the state and reason it ends in (from who asked for
// it, how far the VM had got, and the exit status), and whether onCrash=restart may try again.
import type { Clock, DomainState } from '../../protocol/index.js';
import type { ExitInfo } from './qemu-process.js';

/** Why the shim itself is stopping the hypervisor. */
export type StopIntent = 'destroyed' | 'shutdown-timeout' | 'shutdown' | 'saved' | 'migrated';

/** What the VM knew when its process exited. */
export interface ExitContext {
  intent: StopIntent | undefined;
  state: DomainState;
  guestShutdown: boolean;
}

/** The state, reason and details of an exit. */
export function classifyExit(ctx: ExitContext, info: ExitInfo): { state: DomainState; reason: string; details: Record<string, unknown> } {
  const details: Record<string, unknown> = { exitCode: info.code, signal: info.signal, ...(info.oom === undefined ? {} : { oomKilled: true, oomEvidence: info.oom }) };
  if (ctx.intent !== undefined) return { state: 'shutoff', reason: ctx.intent, details };
  if (ctx.state === 'starting') return { state: 'shutoff', reason: 'failed', details };
  // Before the guest's own shutdown: a guest powering off can still be OOM-killed on the way.
  if (info.oom !== undefined) return { state: 'crashed', reason: 'oom-killed', details };
  if (ctx.guestShutdown) return { state: 'shutoff', reason: 'shutdown', details };
  if (!info.known) return { state: 'crashed', reason: 'unknown', details };
  if (info.signal !== null) return { state: 'crashed', reason: `signal-${info.signal}`, details };
  if (info.code !== 0) return { state: 'crashed', reason: `exit-status-${info.code}`, details };
  return { state: 'shutoff', reason: 'shutdown', details };
}

/** At most `max` crash restarts within a sliding `windowMs`, so a VM that always crashes stops. */
export class RestartBudget {
  private restarts: number[] = [];

  constructor(private readonly clock: Clock, private readonly max = 3, private readonly windowMs = 60_000) {}

  /** True (and counted) when one more restart fits in the window. */
  take(): boolean {
    const now = this.clock.monotonic();
    this.restarts = this.restarts.filter((t) => now - t < this.windowMs);
    if (this.restarts.length >= this.max) return false;
    this.restarts.push(now);
    return true;
  }
}
