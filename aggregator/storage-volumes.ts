// virtqemud's view of virtstoraged, for the one thing it does with volumes itself: the overlays
// of a shut-off VM's disk-only snapshot (no shim runs to ask). Through the public storage client,
// as a shim does (shim/daemon-lookups.ts), a connection per call and closed after it.
import { connectStorage } from '../client/storage-client.js';
import type { Clock } from '../protocol/index.js';

/** The volume calls an offline snapshot and its delete make. */
export interface SnapshotVolumes {
  /** The file of volume `name` of `pool`. */
  pathOf(pool: string, name: string): Promise<string>;
  /** Creates `name` in `pool`: a qcow2 volume on the backing volume `backing`, as large as it. */
  createOverlay(pool: string, backing: string, name: string): Promise<{ path: string }>;
  /** Deletes volume `name` of `pool`. */
  deleteVolume(pool: string, name: string): Promise<void>;
}

/** SnapshotVolumes on the virtstoraged at `uri`, waiting up to `waitMs` for it to come up. */
export function storageVolumes(uri: string, clock: Clock, waitMs: number): SnapshotVolumes {
  const withClient = async <T>(f: (api: Awaited<ReturnType<typeof connectStorage>>['api']) => Promise<T>): Promise<T> => {
    const client = await connectStorage(uri, { clock, waitMs, timeoutMs: 30_000 });
    try {
      return await f(client.api);
    } finally {
      client.close();
    }
  };
  return {
    pathOf: (pool, name) => withClient(async (api) => (await api.getVolume({ pool, name })).path),
    createOverlay: (pool, backing, name) => withClient(async (api) => {
      const base = await api.getVolume({ pool, name: backing });
      return { path: (await api.createVolume({ pool, name, format: 'qcow2', capacity: base.capacity, backing: { pool, name: backing } })).path };
    }),
    deleteVolume: (pool, name) => withClient(async (api) => { await api.deleteVolume({ pool, name }); }),
  };
}
