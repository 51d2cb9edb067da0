// The CLI's outside world as one injected object: streams, environment, clock and how to connect.
// cli/main.ts builds the real one from process.*; unit tests pass fakes, so no test needs a daemon.
import type { CallOptions, Clock, Disposable, LifecycleEvent } from '../protocol/index.js';

/** A text or byte sink such as stdout. */
export interface Sink {
  write(data: string | Uint8Array): void;
  readonly isTTY: boolean;
  /** Terminal width, when known. */
  readonly columns?: number;
}

/** Standard input as the console command reads it. */
export interface Stdin {
  readonly isTTY: boolean;
  on(event: 'data', listener: (chunk: Buffer | string) => void): unknown;
  on(event: 'end', listener: () => void): unknown;
  /** Raw terminal mode (only on a TTY). */
  setRawMode?(raw: boolean): unknown;
  pause(): unknown;
  resume(): unknown;
}

/** A console byte stream (the client's ByteStream). */
export interface ConsoleStream extends AsyncIterable<Uint8Array> {
  write(data: Uint8Array | string): void;
  end(): void;
  /** Set when the stream ended with an error. */
  readonly error: { code: string; message: string } | undefined;
}

/** What the CLI needs of a connection to the `virtq` program. */
export interface CliConnection {
  call(procedure: string, args: unknown, opts?: CallOptions): Promise<unknown>;
  events(filter: { name?: string }): Promise<AsyncIterableIterator<LifecycleEvent>>;
  console(name: string): Promise<ConsoleStream>;
  close(): void;
}

/** A byte stream of a daemon's program (volume upload and download). */
export interface CliByteStream extends AsyncIterable<Uint8Array> {
  /** The reply of the call that opened it. */
  readonly opened: unknown;
  write(data: Uint8Array): void;
  /** Memory for an outgoing chunk inside its frame (ByteStream.chunkBuffer). */
  chunkBuffer?(n: number): Uint8Array | undefined;
  drain(): Promise<void>;
  endWrite(): void;
  end(): void;
  fail(err: { code: string; message: string }): void;
  readonly ended: boolean;
  readonly error: { code: string; message: string } | undefined;
}

/** What the CLI needs of a connection to a secondary daemon's program (storage, secret, ...). */
export interface CliServiceConnection {
  call(procedure: string, args: unknown, opts?: CallOptions): Promise<unknown>;
  openStream(procedure: string, args: unknown, opts?: CallOptions): Promise<CliByteStream>;
  /** Events pushed to this connection (progress of its long operations). */
  events(): AsyncIterable<{ prog: string; name: string; body: unknown }>;
  close(): void;
}

/** Local files, as vol-upload, vol-download and the definition readers use them. */
export interface CliFiles {
  /** Size in bytes of a regular file; INVALID_ARG naming it otherwise. */
  size(path: string): Promise<number>;
  /**
   * The file's bytes in chunks. With `lent`, a chunk is the consumer's only until it asks for
   * the next (its memory is read into again): for a consumer that copies each chunk at once,
   * as an upload's stream does into its frame. With `bufferFor` too, each chunk is read into the
   * memory it gives when it gives any (the frame that sends it: ByteStream.chunkBuffer).
   */
  read(path: string, opts?: { lent?: boolean; bufferFor?: (n: number) => Uint8Array | undefined }): AsyncIterable<Uint8Array>;
  /** Writes to `path` only once commit() is called (a temp file renamed into place); abort() removes it. */
  create(path: string): Promise<{ write(chunk: Uint8Array): Promise<void>; commit(): Promise<void>; abort(): Promise<void> }>;
}

/** What the CLI needs of a connection to an admin socket. */
export interface CliAdminConnection {
  call(procedure: string, args: unknown, opts?: CallOptions): Promise<unknown>;
  close(): void;
}

/** Everything the CLI touches outside itself. */
export interface CliIo {
  readonly env: NodeJS.ProcessEnv;
  readonly cwd: string;
  readonly uid: number;
  readonly stdout: Sink;
  readonly stderr: Sink;
  readonly stdin: Stdin;
  readonly clock: Clock;
  connect(uri: string): Promise<CliConnection>;
  connectAdmin(uri: string): Promise<CliAdminConnection>;
  /** Connects to the daemon serving `program` at `uri` (already that daemon's URI). */
  connectService(program: string, uri: string): Promise<CliServiceConnection>;
  readonly files: CliFiles;
  /** Joins this process's stdin and stdout to the unix socket `path` until either side ends (`virtq proxy`). */
  readonly pipeStdio?: (path: string) => Promise<void>;
  /** Runs `handler` on Ctrl-C (SIGINT) until disposed; the command then cancels what it started. */
  onInterrupt(handler: () => void): Disposable;
}
