// A new volume's record (volume-records.ts: two fsyncs) written while its file is built rather
// than after: once the pool has checked the name is free (under its busy mark, so no other
// create of the name runs here), the record and the file are made at the same time, and their
// fsyncs can share one journal commit. A create or clone that fails forgets the record again; a
// record that cannot be written removes the volume (the operation fails whole). A kill meanwhile
// can leave a record naming no file: it only ever keeps a file put there later from being probed.
import type { Logger } from '../protocol/index.js';
import type { StoragePool, VolumeInfo } from '../drivers/storage/types.js';
import type { VolumeRecord, VolumeRecords } from './volume-records.js';

/** Where the volume is made and recorded. */
export interface MakeTarget {
  records: VolumeRecords;
  pool: StoragePool;
  poolName: string;
  name: string;
  log: Logger;
}

/**
 * Runs `make` (a create or clone of `t.name`, which calls `onClaimed` once the name is free) and
 * writes `record` from that moment on, alongside the file.
 */
export async function recordWhileMaking(t: MakeTarget, record: VolumeRecord, make: (onClaimed: () => void) => Promise<VolumeInfo>): Promise<VolumeInfo> {
  let recording: Promise<void> | undefined;
  const onClaimed = (): void => {
    recording ??= t.records.set(t.poolName, t.name, record);
    recording.catch(() => undefined); // awaited below; never an unhandled rejection meanwhile
  };
  let made: VolumeInfo;
  try {
    made = await make(onClaimed);
  } catch (err) {
    if (recording !== undefined) {
      await recording.catch(() => undefined);
      await t.records.set(t.poolName, t.name, undefined).catch(() => undefined);
    }
    throw err;
  }
  try {
    await (recording ?? t.records.set(t.poolName, t.name, record));
  } catch (err) {
    await t.pool.delete(t.name).catch((e: unknown) => t.log.warn({ pool: t.poolName, volume: t.name, err: e, msgId: 'VOLUME_UNDO_FAILED' }, 'cannot remove the volume whose record was not written'));
    await t.records.set(t.poolName, t.name, undefined).catch(() => undefined);
    throw err;
  }
  return made;
}
