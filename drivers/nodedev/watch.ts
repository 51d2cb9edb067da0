// Change detection by polling: each tick lists the device directories (no attribute is read
// except a new interface's address, which its name needs) and reports what appeared and went.
// Polling, not udev's netlink socket: listening there needs native code Node does not ship.
import type { Clock, Disposable } from '../../protocol/clock.js';
import { VirtqError } from '../../protocol/errors.js';
import type { CapReader } from './cap-reader.js';
import type { Sysfs } from './sysfs.js';
import type { NodeDeviceEvent } from './types.js';

/** How a watch polls. */
export interface WatchOptions {
  /** The clock that times the polls (the system clock in daemons, a fake one in tests). */
  clock: Clock;
  /** Time between two polls; default DEFAULT_WATCH_INTERVAL_MS. */
  intervalMs?: number;
  /** Hears of a poll that failed; the watch retries at the next tick either way. */
  onError?: (err: VirtqError) => void;
}

/** The default time between two polls. */
export const DEFAULT_WATCH_INTERVAL_MS = 2000;

/** The devices present at one moment: `cap/entry` → the device's name and kind. */
export type DeviceSnapshot = Map<string, Omit<NodeDeviceEvent, 'kind'>>;

/** Lists every kind's directory; names already known in `previous` are reused, not re-read. */
export function takeSnapshot(sysfs: Sysfs, readers: readonly CapReader[], previous?: DeviceSnapshot): DeviceSnapshot {
  const now: DeviceSnapshot = new Map();
  for (const reader of readers) {
    for (const entry of sysfs.list(reader.dir)) {
      if (!reader.isDevice(entry)) continue;
      const key = `${reader.cap}/${entry}`;
      now.set(key, previous?.get(key) ?? { name: reader.nameOf(sysfs, entry), cap: reader.cap });
    }
  }
  return now;
}

/** What changed from `before` to `after`: removals first, then additions, each by name. */
export function diffSnapshots(before: DeviceSnapshot, after: DeviceSnapshot): NodeDeviceEvent[] {
  const byName = (a: NodeDeviceEvent, b: NodeDeviceEvent): number => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
  const removed: NodeDeviceEvent[] = [];
  const added: NodeDeviceEvent[] = [];
  for (const [key, dev] of before) if (!after.has(key)) removed.push({ kind: 'removed', ...dev });
  for (const [key, dev] of after) if (!before.has(key)) added.push({ kind: 'added', ...dev });
  return [...removed.sort(byName), ...added.sort(byName)];
}

/**
 * Polls until disposed, calling `onChange` once per device that appeared or went since the
 * previous poll. The first listing is taken now, so only later changes are reported. A poll
 * that fails (fd exhaustion, say) is retried at the next tick and passed to `onError`; a
 * listener that throws gets the rest of the batch delivered first, and the watch goes on.
 */
export function watchDevices(
  sysfs: Sysfs,
  readers: readonly CapReader[],
  onChange: (ev: NodeDeviceEvent) => void,
  options: WatchOptions,
): Disposable {
  const interval = options.intervalMs ?? DEFAULT_WATCH_INTERVAL_MS;
  if (!Number.isFinite(interval) || interval <= 0) {
    throw new VirtqError('INVALID_ARG', `watch intervalMs must be a positive number of milliseconds, not ${interval}`);
  }
  let last = takeSnapshot(sysfs, readers);
  let timer: Disposable | undefined;
  let disposed = false;
  const poll = (): NodeDeviceEvent[] => {
    try {
      const now = takeSnapshot(sysfs, readers, last);
      const events = diffSnapshots(last, now);
      last = now;
      return events;
    } catch (err) {
      options.onError?.(VirtqError.from(err));
      return [];
    }
  };
  const tick = (): void => {
    if (disposed) return;
    const events = poll();
    timer = options.clock.setTimeout(tick, interval);
    deliver(events, onChange, () => disposed);
  };
  timer = options.clock.setTimeout(tick, interval);
  return {
    dispose: () => {
      disposed = true;
      timer?.dispose();
    },
  };
}

function deliver(events: NodeDeviceEvent[], onChange: (ev: NodeDeviceEvent) => void, disposed: () => boolean): void {
  let failure: { err: unknown } | undefined;
  for (const ev of events) {
    if (disposed()) break;
    try {
      onChange(ev);
    } catch (err) {
      failure ??= { err };
    }
  }
  if (failure !== undefined) throw failure.err;
}
