// The typed client of virtsecretd: every `secret` procedure as a method.
import { secretProgram, type SecretProgram, type TypedClient } from '../protocol/index.js';
import { connectDaemon, uriForProgram, type DaemonConnectOptions, type DaemonConnection } from './daemon-connection.js';
import { resolveDefaultUri } from './default-uri.js';

/** A connection to virtsecretd. */
export class SecretClient {
  /** Every procedure of the `secret` program as a typed method. */
  readonly api: TypedClient<SecretProgram>;

  constructor(readonly conn: DaemonConnection<SecretProgram>) {
    this.api = conn.api;
  }

  close(): void {
    this.conn.close();
  }
}

/** Connects to virtsecretd: `secret:///system`, `secret:///system?root=DIR`, or the host of any virtq URI. */
export async function connectSecret(uri?: string, opts: DaemonConnectOptions & { uid?: number } = {}): Promise<SecretClient> {
  const env = opts.env ?? process.env;
  const chosen = uriForProgram(secretProgram.name, uri ?? resolveDefaultUri({ env, ...(opts.uid === undefined ? {} : { uid: opts.uid }) }), env);
  return new SecretClient(await connectDaemon(secretProgram, chosen, opts));
}
