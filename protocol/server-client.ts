// One connected client as the server sees it: identity, access level, counters, event
// subscriptions and the streams it has open. Handlers receive it in their call context.
import { ByteStream, STREAM_WRITABLE_BYTES } from './byte-stream.js';
import type { FramedConnection } from './connection.js';
import { VirtqError } from './errors.js';
import { BytePieces } from './framing.js';

/**
 * Unread bytes past which pushing an event or stream chunk drops the client. Replies are bounded
 * by not reading a client's calls (READ_PAUSE_BYTES); what the server pushes unasked is bounded
 * here, so a subscriber or console that never reads cannot grow the daemon.
 */
export const MAX_UNREAD_PUSH_BYTES = 8 * 1024 * 1024;

/** The access level of the socket a client connected to. */
export type Access = 'rw' | 'ro' | 'admin';

/** How a client reached the server: a local unix socket, or TLS with a verified certificate (its subject DN). */
export type Peer = { transport: 'unix' } | { transport: 'tls'; dn: string; remote: string };

const UNIX_PEER: Peer = { transport: 'unix' };

/** A connected client. */
export class ServerClient {
  calls = 0;
  inFlight = 0;
  /** Event keys this client subscribed to (meaning is up to the handlers). */
  readonly subscriptions = new Set<string>();
  private readonly streams = new Map<number, ByteStream>();
  private readonly opening = new Map<number, () => void>();
  private readonly closeListeners: Array<() => void> = [];
  /**
   * True when an event must not reach this client (about a VM its access rules hide). Set by the
   * server; every push (live, replayed, gap-filled) goes through it, so no feed can forget it.
   */
  hides: (prog: string, body: unknown) => boolean = () => false;
  /**
   * The unix peer's credentials, looked up on the first call once access rules match on uid or
   * gid (undefined: not looked up; null: looked up and unknown). See daemon/acl/peer-creds.ts.
   */
  unixCreds: { uid: number; gid: number; pid: number } | null | undefined;
  /** Looks the peer's credentials up (set by the server for unix clients). */
  lookupCreds: (() => Promise<{ uid: number; gid: number; pid: number } | undefined>) | undefined;
  private credsLooked: Promise<void> | undefined;

  constructor(readonly id: number, readonly access: Access, readonly connectedAt: number, readonly conn: FramedConnection, readonly peer: Peer = UNIX_PEER) {}

  /** Settles once `unixCreds` is known (looked up once per connection). */
  credentials(): Promise<void> {
    this.credsLooked ??= (this.lookupCreds?.() ?? Promise.resolve(undefined)).then((c) => { this.unixCreds = c ?? null; }, () => { this.unixCreds = null; });
    return this.credsLooked;
  }

  /** True for clients of the read-only socket. */
  get readOnly(): boolean {
    return this.access === 'ro';
  }

  /** Pushes an event to this client. */
  pushEvent(prog: string, name: string, body: unknown): void {
    if (this.hides(prog, body)) return;
    if (this.tooSlow(`${prog}.${name} events`)) return;
    try {
      this.conn.send({ prog, proc: name, type: 'event', serial: 0, status: 'ok', body });
    } catch {
      // An event too large to send is dropped for this client only.
    }
  }

  private tooSlow(what: string): boolean {
    if (this.conn.closed) return true;
    const unread = this.conn.unsentBytes;
    if (unread <= MAX_UNREAD_PUSH_BYTES) return false;
    this.conn.fail(new VirtqError('CLIENT_TOO_SLOW', `dropped: ${Math.round(unread / 1024)} KiB of ${what} were left unread (limit ${MAX_UNREAD_PUSH_BYTES / 1024} KiB)`));
    return true;
  }

  /** Runs `listener` when the client disconnects. */
  onClose(listener: () => void): void {
    if (this.conn.closed) listener();
    else this.closeListeners.push(listener);
  }

  /**
   * Creates the server end of a stream bound to a call's serial. What the handler writes is held
   * back until the server has sent the call's reply, so the client knows the stream first.
   */
  createStream(prog: string, proc: string, serial: number): ByteStream {
    let open = false;
    let broken = false;
    const held: Array<Uint8Array | null | VirtqError> = [];
    const send = (data: Uint8Array | null | VirtqError): void => {
      if (broken || this.tooSlow(`${prog}.${proc} stream data`)) return;
      try {
        if (data instanceof VirtqError) this.conn.send({ prog, proc, type: 'stream', serial, status: 'error', body: data.toWire() });
        else this.conn.send({ prog, proc, type: 'stream', serial, status: 'ok', body: data });
      } catch (err) {
        if (data instanceof VirtqError) return;
        // A chunk that cannot be sent (over the frame limit) fails the stream, and nothing after
        // it goes: dropping it alone would leave the peer a stream that ends "done" with bytes missing.
        broken = true;
        const e = VirtqError.from(err);
        try {
          this.conn.send({ prog, proc, type: 'stream', serial, status: 'error', body: e.toWire() });
        } catch {
          // Not even the error fits: the peer learns when the connection goes.
        }
        stream.fail(e);
      }
    };
    const hold = `stream:${serial}`;
    const stream = new ByteStream({
      // Held back data is copied: a writer may reuse its buffer once write() returns.
      send: (data) => (open ? send(data) : held.push(data === null ? null : Uint8Array.prototype.slice.call(data))),
      sendError: (err) => (open ? send(err) : held.push(err)),
      onEnd: () => {
        this.streams.delete(serial);
        this.conn.setPayloadSink(serial, undefined);
      },
      pause: () => this.conn.pauseReading(hold),
      resume: () => this.conn.resumeReading(hold),
      writable: () => this.conn.whenWritable(STREAM_WRITABLE_BYTES),
      // An upload's frames are read into the connection's buffers: given back once written out.
      recycle: (chunk) => this.conn.recycle(chunk),
      // An upload's chunks read straight into its staging buffers (drivers/storage/staged-writer.ts).
      payloadSink: (sink) => this.conn.setPayloadSink(serial, sink),
    });
    this.streams.set(serial, stream);
    this.opening.set(serial, () => {
      open = true;
      for (const data of held.splice(0)) send(data);
    });
    return stream;
  }

  /** Called by the server once the reply that opens stream `serial` has been sent. */
  streamOpened(serial: number): void {
    this.opening.get(serial)?.();
    this.opening.delete(serial);
  }

  /** Delivers an incoming stream frame: bytes, the end (null), or an error the client ended it with. */
  streamData(serial: number, body: unknown, status: 'ok' | 'error' = 'ok'): void {
    const s = this.streams.get(serial);
    if (s === undefined) return;
    if (status === 'error') s.remoteEnded(VirtqError.fromWire(body));
    else if (body instanceof Uint8Array) s.remoteData(body);
    else if (body instanceof BytePieces) for (const piece of body.pieces) s.remoteData(piece);
    else s.remoteEnded(undefined);
  }

  /** Called by the server when the connection has closed. */
  closed(err: VirtqError | undefined): void {
    for (const s of this.streams.values()) s.remoteEnded(err);
    this.streams.clear();
    for (const l of this.closeListeners.splice(0)) l();
  }
}
