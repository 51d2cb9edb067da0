// What a QEMU binary can do, probed once and cached on disk keyed by the binary's identity
// (realpath, size, mtime) and whether /dev/kvm is usable; plus the accelerator choice for a VM.
// Cache files are written atomically (temp, fsync, rename), so readers never see a partial one.
import { accessSync, closeSync, constants, openSync, readFileSync, realpathSync, statSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { delimiter, isAbsolute, join } from 'node:path';
import { systemClock, type Clock } from '../../../protocol/clock.js';
import type { NormalizedDefinition } from '../../../protocol/definition.js';
import { writeFileAtomic } from '../../fs/atomic-file.js';
import { VirtqError } from '../../../protocol/errors.js';
import type { Accel } from './argv.js';
import { runProbe, spawnProbe, type ProbeCommand, type ProbeSpawn } from './capabilities-probe.js';
import { sha256Hex } from '../../../protocol/node-crypto.js';

/** Bumped whenever QemuCapabilities changes shape; part of the cache key. */
export const CAPABILITIES_FORMAT = 1;
/** The environment variable naming the accelerator for definitions that name none (`kvm` or `tcg`). */
export const DEFAULT_ACCEL_VAR = 'VIRTQ_DEFAULT_ACCEL';

/** One machine type the binary offers. */
export interface QemuMachine {
  name: string;
  alias?: string;
  isDefault: boolean;
  deprecated: boolean;
}

/** What one QEMU binary supports, as probed over QMP. */
export interface QemuCapabilities {
  format: typeof CAPABILITIES_FORMAT;
  /** The cache key this record was stored under. */
  key: string;
  /** The binary's resolved path. */
  binary: string;
  version: { major: number; minor: number; micro: number; package: string };
  machines: QemuMachine[];
  /** QMP command names, sorted. */
  commands: string[];
  /** True when the binary accepts `-sandbox` (built with seccomp). */
  sandbox: boolean;
  /** True when `-accel kvm` initialised during the probe. */
  kvm: boolean;
  /** When the probe ran (clock.now()). */
  probedAt: number;
}

/** Where and how to probe. */
export interface ProbeOptions {
  /** Directory for the cache files; created when missing. */
  cacheDir: string;
  clock?: Clock;
  spawn?: ProbeSpawn;
  /** Whether /dev/kvm is usable now; defaults to `kvmUsable()`. */
  kvmCheck?: () => boolean;
  /** Probe deadline (default 15 s). */
  timeoutMs?: number;
  /**
   * Capabilities read earlier (a warm pool shim's, before its definition came): returned only while
   * their key is still the binary's (same path, size, mtime and KVM usability), as the cache would be.
   */
  known?: QemuCapabilities;
  /**
   * Told when the probe's result cannot be cached (a full disk): the capabilities are returned all
   * the same, and the next start probes again. A cache never fails a start.
   */
  onCacheNotWritten?: (err: VirtqError) => void;
}

/**
 * Returns the capabilities of `binary`, from the cache when the binary (and KVM's usability)
 * is unchanged, else by running it once and caching the result. Throws OPERATION_FAILED or
 * TIMEOUT when the probe fails.
 */
export async function probeCapabilities(binary: string, opts: ProbeOptions): Promise<QemuCapabilities> {
  const clock = opts.clock ?? systemClock();
  const kvmNow = (opts.kvmCheck ?? (() => kvmUsable()))();
  // The cache hit (every start but the first after QEMU changes) is three synchronous calls on
  // local files, microseconds each: as thread-pool round trips, awaited in turn by a starting shim
  // whose one pool thread also serves its other chains, they cost a scheduling wait each on a
  // loaded host, plus fs/promises' FileHandle set-up on first use (issue 15, session 12).
  const { real, key } = binaryIdentity(binary, kvmNow);
  if (opts.known?.key === key) return opts.known;
  const file = join(opts.cacheDir, `qemu-caps-${key}.json`);
  const cached = readCache(file, key);
  if (cached !== undefined) return cached;
  const replies = await runProbe(real, opts.spawn ?? spawnProbe, clock, kvmNow, opts.timeoutMs ?? 15_000);
  let caps: QemuCapabilities;
  try {
    caps = fromReplies(replies, { key, binary: real, probedAt: clock.now() });
  } catch (err) {
    throw new VirtqError('OPERATION_FAILED', `probing ${real}: unexpected QMP reply shape: ${(err as Error).message}`, { cause: err });
  }
  await writeCacheFile(opts.cacheDir, file, `${JSON.stringify(caps, null, 2)}\n`).catch((err: unknown) => opts.onCacheNotWritten?.(VirtqError.from(err)));
  return caps;
}

/**
 * The cached capabilities of `binary` without waiting for anything (a warm pool shim reads them
 * before it blocks for its definition); undefined when the cache has none for the binary as it is now.
 */
export function cachedCapabilities(binary: string, cacheDir: string, kvmNow: boolean = kvmUsable()): QemuCapabilities | undefined {
  const { key } = binaryIdentity(binary, kvmNow);
  return readCache(join(cacheDir, `qemu-caps-${key}.json`), key);
}

// The binary's resolved path and its cache key (the binary's identity and whether KVM is usable).
function binaryIdentity(binary: string, kvmNow: boolean): { real: string; key: string } {
  let real: string;
  try {
    real = realpathSync(binary);
  } catch (err) {
    throw new VirtqError('OPERATION_FAILED', `QEMU binary ${binary} not found`, { details: { binary }, cause: err });
  }
  const st = statSync(real);
  return { real, key: sha256Hex(JSON.stringify({ format: CAPABILITIES_FORMAT, path: real, size: st.size, mtimeMs: st.mtimeMs, kvm: kvmNow })) };
}

/** True when `device` (default /dev/kvm) can be opened read-write by this process. */
export function kvmUsable(device = '/dev/kvm'): boolean {
  try {
    closeSync(openSync(device, constants.O_RDWR)); // libuv adds O_CLOEXEC itself
    return true;
  } catch {
    return false;
  }
}

/** The host facts the accelerator choice depends on. */
export interface AccelEnvironment {
  /** /dev/kvm can be opened read-write now. */
  kvmUsable: boolean;
  /** The accelerator for definitions that name none; absent means KVM when usable, else TCG. */
  defaultAccel?: Accel;
}

/** Reads `VIRTQ_DEFAULT_ACCEL` from `vars` (an environment); throws INVALID_ARG on other values. */
export function accelEnvironment(vars: Readonly<Record<string, string | undefined>>, kvmCheck: () => boolean = () => kvmUsable()): AccelEnvironment {
  const value = vars[DEFAULT_ACCEL_VAR];
  if (value === undefined || value === '') return { kvmUsable: kvmCheck() };
  if (value !== 'kvm' && value !== 'tcg') {
    throw new VirtqError('INVALID_ARG', `${DEFAULT_ACCEL_VAR} must be kvm or tcg, not ${JSON.stringify(value)}`);
  }
  return { kvmUsable: kvmCheck(), defaultAccel: value };
}

/**
 * The accelerator for `def`: the definition's own when given (NOT_SUPPORTED when it asks for
 * KVM and KVM is unusable), else the environment's default, else KVM when usable, else TCG.
 */
export function chooseAccel(def: Pick<NormalizedDefinition, 'name' | 'accel'>, caps: Pick<QemuCapabilities, 'kvm' | 'binary'>, env: AccelEnvironment): Accel {
  const kvmWhy = !env.kvmUsable ? '/dev/kvm cannot be opened read-write' : !caps.kvm ? `${caps.binary} could not initialise KVM` : undefined;
  if (def.accel === 'kvm') {
    if (kvmWhy === undefined) return 'kvm';
    throw new VirtqError('NOT_SUPPORTED', `VM ${def.name} asks for accel kvm, but KVM is not usable here: ${kvmWhy}`, { details: { accel: 'kvm', reason: kvmWhy } });
  }
  if (def.accel === 'tcg' || env.defaultAccel === 'tcg') return 'tcg';
  return kvmWhy === undefined ? 'kvm' : 'tcg';
}

/** The machine type `name` stands for (itself or the type it aliases), or undefined when the binary lacks it. */
export function resolveMachine(caps: Pick<QemuCapabilities, 'machines'>, name: string): string | undefined {
  return caps.machines.find((m) => m.name === name || m.alias === name)?.name;
}

/** Finds `name` on a PATH-style `searchPath` (absolute names are returned as they are). */
export async function resolveBinary(name: string, searchPath: string): Promise<string> {
  return resolveBinarySync(name, searchPath);
}

/** resolveBinary, synchronously (a warm pool shim's, before it blocks for its definition). */
export function resolveBinarySync(name: string, searchPath: string): string {
  if (isAbsolute(name)) return name;
  // access(2) in search-path order, synchronously (microseconds each; a start waits for this, and
  // as thread-pool round trips they cost ~1 ms apiece on a loaded host): the first found wins.
  for (const dir of searchPath.split(delimiter)) {
    if (dir === '') continue;
    const candidate = join(dir, name);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here, or not executable: the next directory
    }
  }
  throw new VirtqError('OPERATION_FAILED', `QEMU binary ${name} not found on the search path`, { details: { binary: name } });
}

function fromReplies(replies: Map<ProbeCommand, unknown>, meta: { key: string; binary: string; probedAt: number }): QemuCapabilities {
  const version = replies.get('query-version') as { qemu: { major: number; minor: number; micro: number }; package: string };
  const machines = (replies.get('query-machines') as { name: string; alias?: string; 'is-default'?: boolean; deprecated?: boolean }[])
    .map((m): QemuMachine => ({ name: m.name, ...(m.alias === undefined ? {} : { alias: m.alias }), isDefault: m['is-default'] === true, deprecated: m.deprecated === true }))
    .sort((a, b) => a.name.localeCompare(b.name));
  const commands = (replies.get('query-commands') as { name: string }[]).map((c) => c.name).sort();
  const options = replies.get('query-command-line-options') as { option: string }[];
  const kvm = replies.get('query-kvm') as { enabled: boolean };
  return {
    format: CAPABILITIES_FORMAT,
    key: meta.key,
    binary: meta.binary,
    version: { ...version.qemu, package: version.package.trim() },
    machines,
    commands,
    sandbox: options.some((o) => o.option === 'sandbox'),
    kvm: kvm.enabled,
    probedAt: meta.probedAt,
  };
}

function readCache(file: string, key: string): QemuCapabilities | undefined {
  let value: unknown;
  try {
    value = JSON.parse(readFileSync(file, 'utf8'));
  } catch {
    return undefined; // missing or unreadable: probe again and overwrite
  }
  return isCapabilities(value) && value.key === key ? value : undefined;
}

function isCapabilities(v: unknown): v is QemuCapabilities {
  if (typeof v !== 'object' || v === null) return false;
  const c = v as Partial<Record<keyof QemuCapabilities, unknown>>;
  return c.format === CAPABILITIES_FORMAT && typeof c.key === 'string' && typeof c.binary === 'string'
    && typeof c.version === 'object' && c.version !== null && Array.isArray(c.machines) && Array.isArray(c.commands)
    && typeof c.sandbox === 'boolean' && typeof c.kvm === 'boolean' && typeof c.probedAt === 'number';
}


async function writeCacheFile(dir: string, file: string, text: string): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await writeFileAtomic(file, text);
}
