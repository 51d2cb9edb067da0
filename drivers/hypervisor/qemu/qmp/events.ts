// QMP events → typed callbacks: one name → handler table, parsed defensively. The monitor never
// calls shim code directly; it only invokes the callbacks object its owner passed in, and a
// callback that throws is logged, never allowed to break the connection.
import type { QmpLogger } from './qmp-protocol.js';
import type { QmpMessage } from './transport.js';

/** What every event carries besides its payload. */
export interface QmpEventMeta {
  /** The QMP event name, e.g. `SHUTDOWN`. */
  name: string;
  /** QEMU's timestamp in milliseconds since the epoch, when it sent one. */
  timestampMs: number | undefined;
}

/** `SHUTDOWN`: the guest or the host asked QEMU to shut down (`reason` e.g. `guest-shutdown`, `host-qmp-quit`). */
export interface QmpShutdownEvent { guest: boolean; reason: string }
/** `RESET`: the machine was reset (`reason` e.g. `guest-reset`, `host-qmp-system-reset`). */
export interface QmpResetEvent { guest: boolean; reason: string }
/** `DEVICE_DELETED`: an unplug finished; `device` is the id, absent for devices without one. */
export interface QmpDeviceDeletedEvent { device: string | undefined; path: string }
/** `GUEST_PANICKED`: `action` is what QEMU did (`pause`, `poweroff`, `run`); `info` is hypervisor-specific. */
export interface QmpGuestPanickedEvent { action: string; info: Record<string, unknown> | undefined }
/** `BLOCK_IO_ERROR`: a disk request failed; `action` is what QEMU did (`ignore`, `report`, `stop`). */
export interface QmpBlockIoErrorEvent {
  device: string | undefined;
  nodeName: string | undefined;
  operation: string;
  action: string;
  nospace: boolean;
  reason: string;
}

/** The callbacks a monitor's owner passes in; every one is optional. */
export interface QmpEventCallbacks {
  onShutdown?(event: QmpShutdownEvent, meta: QmpEventMeta): void;
  onPowerdown?(meta: QmpEventMeta): void;
  onReset?(event: QmpResetEvent, meta: QmpEventMeta): void;
  onStop?(meta: QmpEventMeta): void;
  onResume?(meta: QmpEventMeta): void;
  onDeviceDeleted?(event: QmpDeviceDeletedEvent, meta: QmpEventMeta): void;
  onGuestPanicked?(event: QmpGuestPanickedEvent, meta: QmpEventMeta): void;
  onBlockIoError?(event: QmpBlockIoErrorEvent, meta: QmpEventMeta): void;
  /** Any event without an entry in the table, with its raw `data`. */
  onOther?(name: string, data: Record<string, unknown> | undefined, meta: QmpEventMeta): void;
}

type Data = Record<string, unknown>;
type Handler = (cb: QmpEventCallbacks, data: Data, meta: QmpEventMeta) => void;

const str = (d: Data, k: string, fallback = ''): string => (typeof d[k] === 'string' ? (d[k] as string) : fallback);
const optStr = (d: Data, k: string): string | undefined => (typeof d[k] === 'string' && d[k] !== '' ? (d[k] as string) : undefined);
const bool = (d: Data, k: string): boolean => d[k] === true;

/** The event table: QMP event name → parser and callback. Unlisted names go to `onOther`. */
const eventTable: Readonly<Record<string, Handler>> = Object.freeze({
  SHUTDOWN: (cb, d, m) => cb.onShutdown?.({ guest: bool(d, 'guest'), reason: str(d, 'reason', 'unknown') }, m),
  POWERDOWN: (cb, _d, m) => cb.onPowerdown?.(m),
  RESET: (cb, d, m) => cb.onReset?.({ guest: bool(d, 'guest'), reason: str(d, 'reason', 'unknown') }, m),
  STOP: (cb, _d, m) => cb.onStop?.(m),
  RESUME: (cb, _d, m) => cb.onResume?.(m),
  DEVICE_DELETED: (cb, d, m) => cb.onDeviceDeleted?.({ device: optStr(d, 'device'), path: str(d, 'path') }, m),
  GUEST_PANICKED: (cb, d, m) => cb.onGuestPanicked?.({
    action: str(d, 'action', 'pause'),
    info: typeof d['info'] === 'object' && d['info'] !== null ? (d['info'] as Data) : undefined,
  }, m),
  BLOCK_IO_ERROR: (cb, d, m) => cb.onBlockIoError?.({
    device: optStr(d, 'device'),
    nodeName: optStr(d, 'node-name'),
    operation: str(d, 'operation'),
    action: str(d, 'action'),
    nospace: bool(d, 'nospace'),
    reason: str(d, 'reason'),
  }, m),
});

/** Turns QMP event messages into calls on a {@link QmpEventCallbacks} object. */
export class QmpEventDispatcher {
  constructor(private readonly callbacks: QmpEventCallbacks, private readonly log: QmpLogger) {}

  /** Dispatches one message that has an `event` member. */
  dispatch(message: QmpMessage): void {
    const name = String(message['event']);
    const rawData = message['data'];
    const data = typeof rawData === 'object' && rawData !== null && !Array.isArray(rawData) ? (rawData as Data) : undefined;
    const meta: QmpEventMeta = { name, timestampMs: timestampMs(message['timestamp']) };
    this.log.debug({ event: name, data }, 'qmp event');
    try {
      const handler = Object.hasOwn(eventTable, name) ? eventTable[name] : undefined;
      if (handler !== undefined) handler(this.callbacks, data ?? {}, meta);
      else this.callbacks.onOther?.(name, data, meta);
    } catch (err) {
      this.log.warn({ event: name, err }, 'qmp event callback threw');
    }
  }
}

function timestampMs(value: unknown): number | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const { seconds, microseconds } = value as { seconds?: unknown; microseconds?: unknown };
  if (typeof seconds !== 'number' || typeof microseconds !== 'number') return undefined;
  return seconds * 1000 + Math.floor(microseconds / 1000);
}
