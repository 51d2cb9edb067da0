// The secret store virtsecretd serves: secrets in memory, persistent ones also on disk (metadata
// JSON and AES-256-GCM sealed values, see value-cipher.ts), changes applied one at a time and to
// disk before memory. No value leaves it except through getValue, and never in an error.
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { VirtqError } from '../../protocol/errors.js';
import { loadHostKey } from './host-key.js';
import { SecretFiles, type StoredMeta } from './secret-files.js';
import { loadSecrets, type SecretRecord } from './secret-load.js';
import type { SecretDefinition, SecretDriver, SecretMeta, SecretOpenReport, SecretUsage } from './types.js';
import { checkDefinition, checkUsage, checkValue, describeUsage, parseUuid, usageKey, type CheckedDefinition } from './validate.js';
import { sealValue } from './value-cipher.js';

/** Where a daemon with config dir `config` and state dir `state` keeps secrets and the host key. @since 0.2 */
export function secretStorePaths(layout: { config: string; state: string }): { dir: string; keyFile: string } {
  // The key sits apart from the sealed values so a copy of the state dir alone reveals nothing.
  return { dir: join(layout.state, 'secrets'), keyFile: join(layout.config, 'secrets.key') };
}

/** What a SecretStore is built from. @since 0.2 */
export interface SecretStoreOptions {
  /** The secrets directory (made 0700), e.g. `ROOT/lib/secrets`. */
  dir: string;
  /** The host key file (made 0600 on first start), e.g. `ROOT/etc/secrets.key`. */
  keyFile: string;
  /** Makes UUIDs for secrets defined without one (default crypto.randomUUID). */
  newUuid?: () => string;
  /** The uid that must own the key file (default: this process's; null: no check). */
  ownerUid?: number | null;
}

function toMeta(r: SecretRecord): SecretMeta {
  const meta: SecretMeta = { uuid: r.uuid, private: r.private, ephemeral: r.ephemeral, hasValue: r.value !== undefined || r.valueError !== undefined };
  if (r.usage !== undefined) meta.usage = { ...r.usage };
  if (r.description !== undefined) meta.description = r.description;
  return meta;
}

/** The secret driver (see SecretDriver for each call's contract). @since 0.2 */
export class SecretStore implements SecretDriver {
  private readonly files: SecretFiles;
  private readonly keyFile: string;
  private readonly newUuid: () => string;
  private readonly ownerUid: number | undefined;
  private state: 'new' | 'opening' | 'open' | 'closed' = 'new';
  private key: Buffer = Buffer.alloc(0);
  private records = new Map<string, SecretRecord>();
  /** usageKey → uuid: at most one secret per usage. */
  private readonly byUsage = new Map<string, string>();
  /** Changes run one at a time, so a check and the change it guards cannot interleave. */
  private tail: Promise<void> = Promise.resolve();

  constructor(opts: SecretStoreOptions) {
    this.files = new SecretFiles(opts.dir);
    this.keyFile = opts.keyFile;
    this.newUuid = opts.newUuid ?? randomUUID;
    this.ownerUid = opts.ownerUid === null ? undefined : opts.ownerUid ?? process.getuid?.();
  }

  async open(): Promise<SecretOpenReport> {
    if (this.state !== 'new') throw new VirtqError('OPERATION_INVALID', `secret store ${this.files.dir} was already opened`);
    this.state = 'opening';
    try {
      await this.files.prepare();
      const scan = await this.files.scan().catch((err: unknown) => {
        throw new VirtqError('OPERATION_FAILED', `cannot read secrets directory ${this.files.dir}: ${(err as Error).message}`, { cause: err });
      });
      const { key, created } = await loadHostKey(this.keyFile, { storedValues: scan.valueUuids.length, valueDir: this.files.dir, uid: this.ownerUid });
      const loaded = await loadSecrets(this.files, scan, key);
      this.key = key;
      this.records = loaded.records;
      for (const r of this.records.values()) if (r.usage !== undefined) this.byUsage.set(usageKey(r.usage), r.uuid);
      this.state = 'open';
      return { loaded: this.records.size, keyCreated: created, tempFilesRemoved: scan.tempFilesRemoved, problems: loaded.problems };
    } catch (err) {
      this.state = 'new';
      throw err;
    }
  }

  async define(def: SecretDefinition): Promise<SecretMeta> {
    this.ensureOpen();
    const checked = checkDefinition(def);
    return this.exclusive(async () => {
      const uuid = checked.uuid ?? this.freshUuid();
      const existing = this.records.get(uuid);
      this.checkRedefinition(uuid, existing, checked);
      const next: SecretRecord = {
        uuid, usage: checked.usage, description: checked.description, private: checked.private, ephemeral: checked.ephemeral,
        value: existing?.value, valueError: existing?.valueError,
      };
      await this.persistDefinition(next, existing);
      if (existing?.usage !== undefined) this.byUsage.delete(usageKey(existing.usage));
      if (next.usage !== undefined) this.byUsage.set(usageKey(next.usage), uuid);
      this.records.set(uuid, next);
      return toMeta(next);
    });
  }

  async setValue(uuid: string, value: Uint8Array): Promise<SecretMeta> {
    this.ensureOpen();
    const id = parseUuid(uuid);
    const copy = Buffer.from(checkValue(value));
    return this.exclusive(async () => {
      const r = this.find(id);
      try {
        if (!r.ephemeral) await this.files.writeValue(id, sealValue(this.key, id, copy));
      } catch (err) {
        copy.fill(0);
        throw err;
      }
      r.value?.fill(0);
      r.value = copy;
      r.valueError = undefined;
      return toMeta(r);
    });
  }

  getValue(uuid: string): Uint8Array {
    this.ensureOpen();
    const r = this.find(parseUuid(uuid));
    if (r.valueError !== undefined) {
      throw new VirtqError('OPERATION_FAILED', `the stored value of secret ${r.uuid} cannot be read (${r.valueError.detail}); `
        + 'restore its value file from a backup or set the value again', { details: { uuid: r.uuid, reason: r.valueError.reason } });
    }
    if (r.value === undefined) {
      throw new VirtqError('OPERATION_INVALID', `secret ${r.uuid} has no value; set one first`, { details: { uuid: r.uuid } });
    }
    return new Uint8Array(r.value);
  }

  async undefine(uuid: string): Promise<void> {
    this.ensureOpen();
    const id = parseUuid(uuid);
    await this.exclusive(async () => {
      const r = this.find(id);
      if (!r.ephemeral) await this.files.remove(id);
      this.records.delete(id);
      if (r.usage !== undefined) this.byUsage.delete(usageKey(r.usage));
      r.value?.fill(0);
    });
  }

  list(): SecretMeta[] {
    this.ensureOpen();
    return [...this.records.values()].sort((a, b) => (a.uuid < b.uuid ? -1 : a.uuid > b.uuid ? 1 : 0)).map(toMeta);
  }

  get(uuid: string): SecretMeta {
    this.ensureOpen();
    return toMeta(this.find(parseUuid(uuid)));
  }

  lookupByUsage(usage: SecretUsage): SecretMeta {
    this.ensureOpen();
    const u = checkUsage(usage);
    if (u === undefined) throw new VirtqError('INVALID_ARG', 'usage: is required to look a secret up by usage', { details: { field: 'usage' } });
    const uuid = this.byUsage.get(usageKey(u));
    const r = uuid === undefined ? undefined : this.records.get(uuid);
    if (r === undefined) throw new VirtqError('NO_SECRET', `no secret has usage ${describeUsage(u)}`);
    return toMeta(r);
  }

  close(): void {
    this.key.fill(0);
    for (const r of this.records.values()) r.value?.fill(0);
    this.records.clear();
    this.byUsage.clear();
    this.state = 'closed';
  }

  private ensureOpen(): void {
    if (this.state === 'open') return;
    const why = this.state === 'closed' ? 'was closed' : 'is not open yet';
    throw new VirtqError('OPERATION_INVALID', `secret store ${this.files.dir} ${why}`);
  }

  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const result = this.tail.then(() => {
      this.ensureOpen();
      return fn();
    });
    this.tail = result.then(() => undefined, () => undefined);
    return result;
  }

  private find(uuid: string): SecretRecord {
    const r = this.records.get(uuid);
    if (r === undefined) throw new VirtqError('NO_SECRET', `no secret with UUID ${uuid}`, { details: { uuid } });
    return r;
  }

  private freshUuid(): string {
    const uuid = parseUuid(this.newUuid(), 'newUuid()');
    if (this.records.has(uuid)) throw new VirtqError('INTERNAL', `the UUID generator returned ${uuid}, which is already in use`);
    return uuid;
  }

  /** Refuses a redefinition that would expose a private value or take another secret's usage. */
  private checkRedefinition(uuid: string, existing: SecretRecord | undefined, def: CheckedDefinition): void {
    if (existing?.private === true && !def.private) {
      throw new VirtqError('OPERATION_INVALID', `secret ${uuid} is private and cannot be redefined as non-private (that would expose its value); `
        + 'undefine it and define it again to start over without its value', { details: { uuid } });
    }
    if (def.usage === undefined) return;
    const holder = this.byUsage.get(usageKey(def.usage));
    if (holder !== undefined && holder !== uuid) {
      throw new VirtqError('ALREADY_EXISTS', `secret ${holder} already has usage ${describeUsage(def.usage)}; `
        + 'undefine it or give this secret another usage', { details: { uuid: holder, usage: def.usage } });
    }
  }

  /** Brings the disk in line with a (re)definition before memory is changed. */
  private async persistDefinition(next: SecretRecord, existing: SecretRecord | undefined): Promise<void> {
    if (next.ephemeral) {
      if (existing !== undefined && !existing.ephemeral) await this.files.remove(next.uuid);
      return;
    }
    const stored: StoredMeta = { uuid: next.uuid, usage: next.usage, description: next.description, private: next.private };
    if (existing?.ephemeral !== true || existing.value === undefined) {
      // A secret with no value must not pick up a value file an interrupted change left behind.
      if (next.value === undefined && next.valueError === undefined) await this.files.removeValue(next.uuid);
      await this.files.writeMeta(stored);
      return;
    }
    // An ephemeral secret made persistent: its value first. A crash before the metadata is
    // written leaves a value file no metadata claims (not loaded: the secret is gone, as an
    // ephemeral one is after a restart), never a persistent secret without its value.
    await this.files.writeValue(next.uuid, sealValue(this.key, next.uuid, existing.value));
    try {
      await this.files.writeMeta(stored);
    } catch (err) {
      // Roll back: the secret stays ephemeral, so no file may be left for it.
      await this.files.remove(next.uuid).catch(() => undefined);
      throw err;
    }
  }
}
