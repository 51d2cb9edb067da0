// Loading the secrets directory at open(): every readable secret comes back; a damaged file costs
// only its own secret (or only its value), and each is reported as a SecretProblem, never thrown.
import type { DirScan, SecretFiles, StoredMeta } from './secret-files.js';
import type { SecretProblem } from './types.js';
import { describeUsage, usageKey } from './validate.js';
import { openValue, type OpenFailure } from './value-cipher.js';

/** Files read at once: enough to keep the I/O threads busy, few enough to stay far from fd limits. */
const BATCH = 32;

/** A secret as the store holds it. `value` is the plaintext; `valueError` set if it could not be read. */
export interface SecretRecord extends StoredMeta {
  ephemeral: boolean;
  value: Buffer | undefined;
  valueError: OpenFailure | undefined;
}

/** What loadSecrets found. */
export interface LoadedSecrets {
  records: Map<string, SecretRecord>;
  problems: SecretProblem[];
}

/** Reads every metadata file, then every value file, of a scanned directory. */
export async function loadSecrets(files: SecretFiles, scan: DirScan, key: Uint8Array): Promise<LoadedSecrets> {
  const records = new Map<string, SecretRecord>();
  const usages = new Map<string, string>();
  const problems: SecretProblem[] = [];
  // Files are read in parallel; conflicts are then decided in UUID order, so the outcome is fixed.
  const metas = await inBatches(scan.metaUuids, (uuid) => files.readMeta(uuid).catch((err: unknown) => err as Error));
  scan.metaUuids.forEach((uuid, i) => {
    const file = files.metaFile(uuid);
    const meta = metas[i];
    if (meta === undefined || meta instanceof Error) {
      problems.push({ reason: 'METADATA_CORRUPT', file, uuid, message: `secret ${uuid} skipped: its metadata file ${file} is unusable (${meta?.message ?? 'unread'}); fix or remove the file, or define the secret again` });
      return;
    }
    if (meta.usage !== undefined) {
      const holder = usages.get(usageKey(meta.usage));
      if (holder !== undefined) {
        problems.push({ reason: 'USAGE_CONFLICT', file, uuid, message: `secret ${uuid} skipped: secret ${holder} already has usage ${describeUsage(meta.usage)}; remove one of the two metadata files` });
        return;
      }
      usages.set(usageKey(meta.usage), uuid);
    }
    records.set(uuid, { ...meta, ephemeral: false, value: undefined, valueError: undefined });
  });
  const metaFiles = new Set(scan.metaUuids);
  const loaded: SecretRecord[] = [];
  for (const uuid of scan.valueUuids) {
    const record = records.get(uuid);
    if (record !== undefined) loaded.push(record);
    // A skipped secret's value is already covered by its own problem.
    else if (!metaFiles.has(uuid)) problems.push(orphanProblem(files.valueFile(uuid), uuid));
  }
  const valueProblems = await inBatches(loaded, (record) => loadValue(files, record, key));
  for (const p of valueProblems) if (p !== undefined) problems.push(p);
  return { records, problems };
}

/** Runs `fn` over `items`, BATCH at a time, keeping the order of results. */
async function inBatches<T, R>(items: readonly T[], fn: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = [];
  for (let i = 0; i < items.length; i += BATCH) out.push(...await Promise.all(items.slice(i, i + BATCH).map(fn)));
  return out;
}

function orphanProblem(file: string, uuid: string): SecretProblem {
  return { reason: 'ORPHAN_VALUE', file, uuid, message: `value file ${file} has no metadata file beside it; left in place, not loaded (define secret ${uuid} again to use it, or remove the file)` };
}

async function loadValue(files: SecretFiles, record: SecretRecord, key: Uint8Array): Promise<SecretProblem | undefined> {
  const file = files.valueFile(record.uuid);
  let sealed: Buffer;
  try {
    sealed = await files.readValue(record.uuid);
  } catch (err) {
    record.valueError = { reason: 'VALUE_CORRUPT', detail: `cannot read it: ${(err as Error).message}` };
    return valueProblem(record, file);
  }
  const opened = openValue(key, record.uuid, sealed);
  if (opened.ok) {
    record.value = opened.value;
    return undefined;
  }
  record.valueError = { reason: opened.reason, detail: opened.detail };
  return valueProblem(record, file);
}

function valueProblem(record: SecretRecord, file: string): SecretProblem {
  const failure = record.valueError;
  const reason = failure?.reason ?? 'VALUE_CORRUPT';
  const hint = reason === 'VALUE_WRONG_KEY' ? 'restore the host key it was sealed with, or set the value again' : 'restore the file from a backup, or set the value again';
  return { reason, file, uuid: record.uuid, message: `secret ${record.uuid} loaded without a usable value: value file ${file}: ${failure?.detail ?? 'unreadable'}; ${hint}` };
}
