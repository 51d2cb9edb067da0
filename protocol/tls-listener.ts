// A daemon's TCP listener with mutual TLS: TLS 1.3 only, a client certificate signed by the
// configured CA required at the handshake (expired or foreign ones refused there, with a log line
// naming the subject and the reason), handshakes bounded in time and in number, and certificates
// re-read on demand without touching connected clients. The verified subject DN is the identity.
import { readFile } from 'node:fs/promises';
import type { Socket } from 'node:net';
import type { SecureContextOptions, Server, TLSSocket } from 'node:tls';
import { VirtqError } from './errors.js';
import type { Logger } from './logger.js';
import { nodeCrypto } from './node-crypto.js';

/** The PEM files of a TLS listener. */
export interface TlsFiles {
  /** The server's certificate (chain). */
  cert: string;
  key: string;
  /** The CA certificates client certificates must chain to. */
  ca: string;
}

/** What a TLS listener is built from. */
export interface TlsListenerOptions {
  host: string;
  port: number;
  files: TlsFiles;
  /** A connection whose handshake has not finished this long is dropped. */
  handshakeTimeoutMs: number;
  /** TCP connections allowed at once (in their handshake or established); more are dropped at accept. */
  maxConnections: () => number;
  log: Logger;
  /** A client whose certificate verified, with its subject DN. */
  onClient(socket: TLSSocket, dn: string): void;
}

const TLS13 = { minVersion: 'TLSv1.3', maxVersion: 'TLSv1.3' } as const;

/**
 * node:tls, loaded on first use: a process that imports it pays ~1.5 MiB of PSS (OpenSSL's TLS
 * state) whether or not it ever listens, and most processes that bundle this file (every shim)
 * never do (bench/RESULTS.md, issue 15 target 2). Synchronous, so callers keep their shape.
 */
export function nodeTls(): typeof import('node:tls') {
  return process.getBuiltinModule('node:tls');
}

/** Reads `files` into a secure context's options; INVALID_ARG naming the file that is unreadable or bad. */
export async function loadTlsMaterial(files: TlsFiles): Promise<SecureContextOptions> {
  const read = async (what: string, path: string): Promise<Buffer> => {
    try {
      return await readFile(path);
    } catch (err) {
      throw new VirtqError('INVALID_ARG', `cannot read the TLS ${what} ${path}: ${(err as Error).message}`, { cause: err });
    }
  };
  const material = { cert: await read('certificate', files.cert), key: await read('key', files.key), ca: await read('CA certificate', files.ca), ...TLS13 };
  try {
    // Builds a context once to check the key matches the certificate and every PEM parses.
    nodeTls().createSecureContext(material);
  } catch (err) {
    throw new VirtqError('INVALID_ARG', `bad TLS material (${files.cert}, ${files.key}, ${files.ca}): ${(err as Error).message}`, { cause: err });
  }
  return material;
}

/** A certificate's subject as one line, `O=virtq-test,CN=alice` (openssl's order, comma-separated). */
export function subjectDn(raw: Buffer | undefined): string {
  if (raw === undefined || raw.length === 0) return '';
  try {
    return new (nodeCrypto().X509Certificate)(raw).subject.split('\n').join(',');
  } catch {
    return '';
  }
}

/** A listening TLS server of one daemon. */
export class TlsListener {
  private open = 0;
  /** Handshake timers by the peer's address and port (unique among live connections). */
  private readonly handshaking = new Map<string, NodeJS.Timeout>();

  private constructor(private readonly server: Server, private readonly opts: TlsListenerOptions, private files: TlsFiles) {}

  /** Reads the certificates and listens; INVALID_ARG for bad material, SOCKET_IN_USE for a taken port. */
  static async open(opts: TlsListenerOptions): Promise<TlsListener> {
    const material = await loadTlsMaterial(opts.files);
    const server = nodeTls().createServer({ ...material, requestCert: true, rejectUnauthorized: false, handshakeTimeout: opts.handshakeTimeoutMs, allowHalfOpen: false });
    const listener = new TlsListener(server, opts, opts.files);
    listener.wire();
    await new Promise<void>((resolve, reject) => {
      server.once('error', (err: NodeJS.ErrnoException) => reject(err.code === 'EADDRINUSE'
        ? new VirtqError('SOCKET_IN_USE', `TLS address ${opts.host}:${opts.port} is in use`)
        : new VirtqError('INVALID_ARG', `cannot listen for TLS on ${opts.host}:${opts.port}: ${err.message}`, { cause: err })));
      server.listen(opts.port, opts.host, () => resolve());
    });
    server.on('error', (err) => opts.log.error({ err }, 'tls listener error'));
    return listener;
  }

  /** The port listened on (the one chosen when 0 was asked for). */
  get port(): number {
    const a = this.server.address();
    return typeof a === 'object' && a !== null ? a.port : 0;
  }

  /** The files in use. */
  get paths(): TlsFiles {
    return { ...this.files };
  }

  /**
   * Re-reads the certificates (from `files` when given) for new handshakes; connected clients keep
   * their sessions. Bad material throws INVALID_ARG and the old certificates stay in force.
   */
  async reload(files: TlsFiles = this.files): Promise<TlsFiles> {
    const material = await loadTlsMaterial(files);
    this.server.setSecureContext(material);
    this.files = { ...files };
    this.opts.log.info({ files }, 'tls certificates reloaded');
    return this.paths;
  }

  /** Stops accepting; connected clients are the RPC server's to drop. */
  close(): Promise<void> {
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  private wire(): void {
    const { log } = this.opts;
    // Raw TCP connections, before any TLS: handshaking and established ones count against one cap,
    // so a flood of connections that never handshake is bounded like one of idle clients.
    this.server.on('connection', (socket: Socket) => {
      if (this.open >= this.opts.maxConnections()) {
        log.warn({ remote: socket.remoteAddress, open: this.open }, 'tls connection refused: too many connections');
        socket.destroy();
        return;
      }
      this.open++;
      // Node's own handshakeTimeout starts only once TLS bytes arrive: a connection that sends
      // nothing would stay forever. This timer covers the whole handshake from accept.
      const key = `${socket.remoteAddress ?? ''}:${socket.remotePort ?? 0}`;
      const timer = setTimeout(() => {
        log.warn({ msgId: 'tls-handshake-timeout', remote: socket.remoteAddress }, 'tls handshake not finished in time; dropped');
        socket.destroy();
      }, this.opts.handshakeTimeoutMs);
      timer.unref();
      this.handshaking.set(key, timer);
      socket.once('close', () => {
        this.open--;
        clearTimeout(timer);
        if (this.handshaking.get(key) === timer) this.handshaking.delete(key);
      });
    });
    // Node's own rejectUnauthorized drops a bad certificate silently (the error that follows is a
    // bare ECONNRESET): verifying here keeps the subject and the reason for the log line.
    this.server.on('secureConnection', (tls: TLSSocket) => {
      const key = `${tls.remoteAddress ?? ''}:${tls.remotePort ?? 0}`;
      clearTimeout(this.handshaking.get(key));
      this.handshaking.delete(key);
      const cert = tls.getPeerX509Certificate();
      const subject = subjectDn(cert?.raw);
      if (cert === undefined || !tls.authorized) {
        const reason = cert === undefined ? 'NO_CLIENT_CERTIFICATE' : String(tls.authorizationError ?? 'UNVERIFIED');
        log.warn({ msgId: 'tls-client-refused', remote: tls.remoteAddress, subject: subject === '' ? '(no certificate)' : subject, reason }, 'tls client refused');
        tls.destroy();
        return;
      }
      this.opts.onClient(tls, subject);
    });
    this.server.on('tlsClientError', (err: Error & { code?: string }, tls: TLSSocket) => {
      let subject = '';
      try {
        subject = subjectDn(tls.getPeerX509Certificate()?.raw);
      } catch {
        // No certificate was offered, or the handshake never got that far.
      }
      log.warn({ msgId: 'tls-handshake-failed', remote: tls.remoteAddress, subject: subject === '' ? '(no certificate)' : subject, reason: err.code ?? err.message }, `tls handshake failed: ${err.message}`);
    });
  }
}
