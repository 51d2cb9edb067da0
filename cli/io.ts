// The CLI's outside world as one injected object: streams, environment, clock and how to connect.
// cli/main.ts builds the real one from process.*; unit tests pass fakes, so no test needs a daemon.
import type { CallOptions, Clock, LifecycleEvent } from '../protocol/index.js';

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
}
