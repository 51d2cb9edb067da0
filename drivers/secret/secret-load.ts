// Loading the secrets directory at open(): every readable secret comes back; a damaged file costs
// only its own secret (or only its value), and each is reported as a SecretProblem, never thrown.
import type { DirScan, SecretFiles, StoredMeta } from './secret-files.js';
import type { SecretProblem } from './types.js';
import { describeUsage, usageKey } from './validate.js';
import { openValue, type OpenFailure } from './value-cipher.js';

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
  for (const uuid of scan.metaUuids) {
    const file = files.metaFile(uuid);
    let meta: StoredMeta;
    try {
      meta = await files.readMeta(uuid);
    } catch (err) {
      problems.push({ reason: 'METADATA_CORRUPT', file, uuid, message: `secret ${uuid} skipped: its metadata file ${file} is unusable (${(err as Error).message}); fix or remove the file, or define the secret again` });
      continue;
    }
    if (meta.usage !== undefined) {
      const holder = usages.get(usageKey(meta.usage));
      if (holder !== undefined) {
        problems.push({ reason: 'USAGE_CONFLICT', file, uuid, message: `secret ${uuid} skipped: secret ${holder} already has usage ${describeUsage(meta.usage)}; remove one of the two metadata files` });
        continue;
      }
      usages.set(usageKey(meta.usage), uuid);
    }
    records.set(uuid, { ...meta, ephemeral: false, value: undefined, valueError: undefined });
  }
  const metaFiles = new Set(scan.metaUuids);
  for (const uuid of scan.valueUuids) {
    const record = records.get(uuid);
    const file = files.valueFile(uuid);
    if (record === undefined) {
      // A skipped secret's value is already covered by its own problem.
      if (!metaFiles.has(uuid)) problems.push({ reason: 'ORPHAN_VALUE', file, uuid, message: `value file ${file} has no metadata file beside it; left in place, not loaded (define secret ${uuid} again to use it, or remove the file)` });
      continue;
    }
    const problem = await loadValue(files, record, key);
    if (problem !== undefined) problems.push(problem);
  }
  return { records, problems };
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
