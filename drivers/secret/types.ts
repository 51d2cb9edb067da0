// The secret driver's vocabulary: what a secret is (metadata; its value is separate bytes),
// the limits every value and text field obeys, and what open() reports about damaged files.
// A value is never part of any type here except the Uint8Array that getValue returns.

/**
 * What a secret is for. `volume`: the passphrase of an encrypted volume (a path or
 * `pool/volume`, as the storage side names it); `text`: any free-text tag. A secret without a
 * usage has none. At most one secret has a given usage.
 * @since 0.2
 */
export type SecretUsage =
  | { type: 'volume'; volume: string }
  | { type: 'text'; text: string };

/**
 * A secret's metadata: everything about it except its value. Safe to log and to return on a
 * read-only socket. `private` secrets' values must not be handed to clients (the daemon's rule;
 * this driver returns any value it is asked for, so the daemon can still use it internally).
 * @since 0.2
 */
export interface SecretMeta {
  /** Canonical lowercase 8-4-4-4-12 form. */
  uuid: string;
  usage?: SecretUsage;
  description?: string;
  private: boolean;
  /** Kept in memory only: gone when the daemon stops. */
  ephemeral: boolean;
  /** A value has been set (it may still be unreadable if its file was damaged: see open()). */
  hasValue: boolean;
}

/**
 * What define() takes. Without `uuid` a new one is made; with a known `uuid` the secret's
 * metadata is replaced (omitted fields are cleared) and its value kept.
 * @since 0.2
 */
export interface SecretDefinition {
  uuid?: string;
  usage?: SecretUsage;
  description?: string;
  /** Default false. A private secret cannot be redefined as non-private. */
  private?: boolean;
  /** Default false. */
  ephemeral?: boolean;
}

/** Why open() could not use a file, as a stable string. @since 0.2 */
export type SecretProblemReason =
  /** The metadata file is unreadable, not JSON, or fails validation: the secret is skipped. */
  | 'METADATA_CORRUPT'
  /** Another secret (first by UUID) already has this usage: this one is skipped. */
  | 'USAGE_CONFLICT'
  /** The value file is damaged or was tampered with: the secret is kept, its value unreadable. */
  | 'VALUE_CORRUPT'
  /** The value was encrypted with another host key: the secret is kept, its value unreadable. */
  | 'VALUE_WRONG_KEY'
  /** A value file without a metadata file: left on disk, not loaded. */
  | 'ORPHAN_VALUE';

/** One file open() could not use, and what it did about it. @since 0.2 */
export interface SecretProblem {
  reason: SecretProblemReason;
  /** The file concerned (absolute path). */
  file: string;
  /** The secret concerned, when the file name gives it. */
  uuid?: string;
  /** A sentence for the log: what is wrong and what to do. Never contains a value. */
  message: string;
}

/** What open() found. @since 0.2 */
export interface SecretOpenReport {
  /** Secrets loaded from disk (persistent ones; ephemeral ones never survive a restart). */
  loaded: number;
  /** True when this open() created the host key (first start). */
  keyCreated: boolean;
  /** Leftover temp files of interrupted writes, removed. */
  tempFilesRemoved: number;
  /** Files that could not be used; the daemon should log each (warn) and keep serving. */
  problems: SecretProblem[];
}

/** The largest secret value, in bytes (64 KiB). @since 0.2 */
export const MAX_SECRET_VALUE_BYTES = 64 * 1024;

/** The longest description, in characters. @since 0.2 */
export const MAX_SECRET_DESCRIPTION_CHARS = 1024;

/** The longest usage string (a volume path or free text), in characters. @since 0.2 */
export const MAX_SECRET_USAGE_CHARS = 4096;

/**
 * Pino `redact` paths a daemon should configure so a value can never reach a log line, whatever
 * object carries it (call args `{uuid, value}`, a reply `{value}`, a message body): values only
 * ever travel in a field named `value`. Metadata carries no value, so logging it is safe.
 * @since 0.2
 */
export const SECRET_REDACT_PATHS: readonly string[] = ['value', '*.value', '*.*.value', '*.*.*.value'];

/**
 * The secret driver as virtsecretd uses it (STYLE.md §10). Every call validates its own
 * arguments (INVALID_ARG) so the driver is safe whatever the daemon's schemas let through.
 * Access rules (read-only sockets, private secrets: PERMISSION_DENIED) are the daemon's.
 * @since 0.2
 */
export interface SecretDriver {
  /** Loads the host key (creating it on first start) and every stored secret. */
  open(): Promise<SecretOpenReport>;
  /** Creates a secret, or replaces a known one's metadata keeping its value. */
  define(def: SecretDefinition): Promise<SecretMeta>;
  /** Sets (replaces) a secret's value: 1 byte to MAX_SECRET_VALUE_BYTES, any bytes. */
  setValue(uuid: string, value: Uint8Array): Promise<SecretMeta>;
  /** A copy of the value. NO_SECRET if unknown, OPERATION_INVALID if it has none. */
  getValue(uuid: string): Uint8Array;
  /** Forgets a secret and removes its files. NO_SECRET if unknown. */
  undefine(uuid: string): Promise<void>;
  /** Every secret, sorted by UUID. */
  list(): SecretMeta[];
  /** One secret's metadata. NO_SECRET if unknown. */
  get(uuid: string): SecretMeta;
  /** The secret with this usage. NO_SECRET if none. */
  lookupByUsage(usage: SecretUsage): SecretMeta;
  /** Wipes the key and values from memory; later calls fail. */
  close(): void;
}
