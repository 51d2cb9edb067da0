// The typed client of virtstoraged: every `storage` procedure as a method, plus what takes more
// than one call — uploads and downloads over byte streams with flow control, and long
// operations (clone) that report progress and can be cancelled.
import {
  JobProgress, VirtqError, lazyValidator, storageProgram,
  type ArgsOf, type RetOf, type StorageProgram, type TypedClient,
} from '../protocol/index.js';
import { connectDaemon, type DaemonConnectOptions, type DaemonConnection } from './daemon-connection.js';
import { resolveDefaultUri } from './default-uri.js';
import { uriForProgram } from './daemon-connection.js';
import { stat } from 'node:fs/promises';
import { fileChunks, fileChunksOfReadStream } from './file-source.js';
import { receiveDownload, sendUpload, type TransferControl } from './volume-transfer.js';
import { tempSuffix } from '../protocol/node-crypto.js';

type Procs = StorageProgram['procs'];

/** How a long operation reports and stops. */
export interface JobControl {
  /** Called with progress (at most every 100 ms, and at the end). */
  onProgress?(p: JobProgress): void;
  /** Aborting cancels the operation on the server (OPERATION_ABORTED, nothing left half-made). */
  signal?: AbortSignal;
}

const isProgress = lazyValidator(JobProgress, 'job-progress');

/** A connection to virtstoraged. */
export class StorageClient {
  /** Every call procedure of the `storage` program as a typed method. */
  readonly api: TypedClient<StorageProgram>;
  private readonly jobs = new Map<string, (p: JobProgress) => void>();
  private pumping = false;

  constructor(readonly conn: DaemonConnection<StorageProgram>) {
    this.api = conn.api;
  }

  /** Clones a volume, reporting progress and cancellable through `ctl`. */
  cloneVolume(args: Omit<ArgsOf<Procs['cloneVolume']>, 'job'>, ctl: JobControl = {}): Promise<RetOf<Procs['cloneVolume']>> {
    return this.withJob(ctl, (job) => this.api.cloneVolume({ ...args, job }, { timeoutMs: 0 }));
  }

  /**
   * Replaces a volume's bytes with `length` bytes from `source`; resolves once virtstoraged has
   * them all on disk under the volume's name (it renames only then). Aborting leaves the volume as it was.
   * A plain `fs.createReadStream(path)` is read as uploadFile() reads (the stream is then destroyed
   * unread): its fresh 1 MiB buffers cost ~3x the client's CPU. Chunks of any other source are
   * copied into their frames before the next is asked for: a source may reuse its buffers.
   */
  async upload(pool: string, name: string, source: AsyncIterable<Uint8Array>, length: number, ctl: TransferControl = {}): Promise<void> {
    const stream = await this.conn.openStream('uploadVolume', { pool, name, length });
    await sendUpload(stream, fileChunksOfReadStream(source) ?? source, length, `upload of ${pool}/${name}`, ctl);
  }

  /** Replaces a volume's bytes with the whole of the local file `path` (its size now), read straight into the frames that send it. */
  async uploadFile(pool: string, name: string, path: string, ctl: TransferControl = {}): Promise<void> {
    const { size } = await stat(path);
    const stream = await this.conn.openStream('uploadVolume', { pool, name, length: size });
    await sendUpload(stream, (bufferFor) => fileChunks(path, { end: size - 1 }, undefined, bufferFor), size, `upload of ${pool}/${name}`, ctl);
  }

  /**
   * Downloads a volume's bytes into `sink`, chunk by chunk; resolves with the byte count. Each
   * chunk is the sink's until the promise it returns settles, and is then reused for later bytes:
   * write it (or copy it) before settling.
   */
  async download(pool: string, name: string, sink: (chunk: Uint8Array) => Promise<void>, ctl: TransferControl = {}): Promise<number> {
    const stream = await this.conn.openStream('downloadVolume', { pool, name });
    return receiveDownload(stream, sink, `download of ${pool}/${name}`, ctl);
  }

  /** Closes the connection; operations in flight on the server are cancelled. */
  close(): void {
    this.conn.close();
  }

  private async withJob<T>(ctl: JobControl, run: (job: string) => Promise<T>): Promise<T> {
    const job = `j-${tempSuffix()}`;
    if (ctl.onProgress !== undefined) {
      this.jobs.set(job, ctl.onProgress);
      this.pump();
    }
    const abort = (): void => void this.api.cancelJob({ job }).catch(() => undefined);
    ctl.signal?.addEventListener('abort', abort, { once: true });
    try {
      return await run(job);
    } finally {
      ctl.signal?.removeEventListener('abort', abort);
      this.jobs.delete(job);
    }
  }

  // One reader of the connection's events hands each progress event to its job's listener.
  private pump(): void {
    if (this.pumping) return;
    this.pumping = true;
    void (async () => {
      for await (const ev of this.conn.events()) {
        if (ev.prog !== storageProgram.name || ev.name !== 'progress' || !isProgress.check(ev.body)) continue;
        this.jobs.get(ev.body.job)?.(ev.body);
      }
    })();
  }
}

/** Connects to virtstoraged: `storage:///system`, `storage:///system?root=DIR`, or the host of any virtq URI. */
export async function connectStorage(uri?: string, opts: DaemonConnectOptions & { uid?: number } = {}): Promise<StorageClient> {
  const env = opts.env ?? process.env;
  const chosen = uriForProgram(storageProgram.name, uri ?? resolveDefaultUri({ env, ...(opts.uid === undefined ? {} : { uid: opts.uid }) }), env);
  return new StorageClient(await connectDaemon(storageProgram, chosen, opts));
}
