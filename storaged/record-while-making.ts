// A new volume's record (volume-records.ts) written while its file is built rather than after:
// once the pool has checked the name is free (under its busy mark, so no other create of the
// name runs here), the record's line is written, before the volume's link, and synced beside
// (or, RecordDurability 'use', just after) the file. A plain raw volume's name is checked by its
// link itself (dir-pool.ts, createSparse): its line follows the link, written while the file's
// fsync runs; its bytes are zeros the daemon wrote, so a file left without its line by a kill
// there probes as the raw volume it is. A create or clone that fails forgets the
// record again. A record whose line cannot be written removes the volume (the operation fails
// whole): the pool waits for the line before it lets go of the new name and removes the volume
// itself, so no clone of the name can have started and keep it (OpControl.onClaimed; the undo
// below is for a pool that does not wait). A kill meanwhile can leave a record naming no file:
// it only ever keeps a file put there later from being probed.
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
 * When the reply waits for the record to be on the disk. `reply`: always (a clone, whose bytes
 * are a guest's from the start; a volume with a secret, whose passphrase only the record names).
 * `use`: the reply waits for the line to be in the log's file only, and getVolume/uploadVolume
 * wait for its sync (VolumeRecords.settled) — for a volume whose bytes this daemon wrote (a
 * create without secret): until a guest or an upload writes into it, probing it finds what the
 * record says, so losing the record to a power loss meanwhile loses nothing.
 */
export type RecordDurability = 'reply' | 'use';

/**
 * Runs `make` (a create or clone of `t.name`, which calls `onClaimed` once the name is free) and
 * writes `record` from that moment on, alongside the file.
 */
export async function recordWhileMaking(t: MakeTarget, record: VolumeRecord, make: (onClaimed: () => Promise<void>) => Promise<VolumeInfo>, durability: RecordDurability = 'reply'): Promise<VolumeInfo> {
  let recording: Promise<{ durable: Promise<void> }> | undefined;
  // 'use': the record's sync starts once the volume's own fsync is done, so the reply waits for one cache flush, not two in turn.
  let made: VolumeInfo;
  let madeSignal = (): void => undefined;
  const madeDone = durability === 'use' ? new Promise<void>((resolve) => { madeSignal = resolve; }) : undefined;
  // The pool waits for the line to be written before it lets go of the name (OpControl.onClaimed).
  const onClaimed = (): Promise<void> => {
    recording ??= t.records.setWritten(t.poolName, t.name, record, madeDone);
    recording.catch(() => undefined); // awaited below; never an unhandled rejection meanwhile
    const written = recording.then(() => undefined);
    written.catch(() => undefined); // the pool's to await; handled whatever it does
    return written;
  };
  try {
    made = await make(onClaimed).finally(madeSignal);
  } catch (err) {
    if (recording !== undefined) {
      await recording.then((r) => r.durable).catch(() => undefined);
      await t.records.set(t.poolName, t.name, undefined).catch(() => undefined);
    }
    throw err;
  }
  try {
    const { durable } = await (recording ?? t.records.setWritten(t.poolName, t.name, record));
    if (durability === 'reply') await durable;
    else durable.catch((err: unknown) => t.log.warn({ pool: t.poolName, volume: t.name, err, msgId: 'VOLUME_RECORD_NOT_WRITTEN' }, 'the new volume\'s record did not reach the disk; the next change writes it'));
  } catch (err) {
    await t.pool.delete(t.name).catch((e: unknown) => t.log.warn({ pool: t.poolName, volume: t.name, err: e, msgId: 'VOLUME_UNDO_FAILED' }, 'cannot remove the volume whose record was not written'));
    await t.records.set(t.poolName, t.name, undefined).catch(() => undefined);
    throw err;
  }
  return made;
}
