// libvirt domain XML -> virtq definition: the domain-wide parts (name, uuid, memory, vCPUs, OS
// and boot, CPU, features, clock, lifecycle actions); devices.ts does <devices>. Whatever is not
// carried over is reported with its element path; the whole is checked by the definition schema.
import { isAbsolute, resolve } from 'node:path';
import { NAME_PATTERN, VirtqError, definitionValidator, type Definition, type LifecycleAction } from '../../protocol/index.js';
import { convertDevices } from './devices.js';
import { attrReason, reasonFor } from './reasons.js';
import { Report, type Issue } from './report.js';
import { leftovers, parseXml, type LeftOut, type XmlElement } from './xml-tree.js';

/** How to convert. */
export interface LibvirtConvertOptions {
  /** Names the document in messages (a file name). */
  readonly source?: string;
  /** Leave out what cannot be carried over (returned in `leftOut`) instead of failing. */
  readonly lossy?: boolean;
  /** Relative kernel, initrd and disk paths are resolved against this directory (default: the current one). */
  readonly baseDir?: string;
  /** virtnetworkd networks standing for host bridges: an `<interface type='bridge'>` on a bridge listed here joins that network. */
  readonly bridgeNetworks?: Readonly<Record<string, string>>;
}

/** A converted domain: the definition and what was left out of it (empty unless `lossy`). */
export interface LibvirtConversion {
  readonly definition: Definition;
  readonly leftOut: LeftOut[];
}

type Mutable = { -readonly [K in keyof Definition]?: Definition[K] };

const UUID_HEX = /^[0-9a-f]{32}$/;
const SCALE: Readonly<Record<string, number>> = { k: 1, m: 2, g: 3, t: 4, p: 5, e: 6 };

/** Bytes per `unit` as libvirt reads it (`KiB` when absent; `KB` is 1000, `k` and `KiB` 1024), or undefined. */
export function unitBytes(unit: string | undefined): bigint | undefined {
  const u = (unit ?? 'KiB').toLowerCase();
  if (u === 'b' || u === 'byte' || u === 'bytes') return 1n;
  const pow = SCALE[u.slice(0, 1)];
  const rest = u.slice(1);
  const base = rest === '' || rest === 'ib' ? 1024n : rest === 'b' ? 1000n : undefined;
  return pow === undefined || base === undefined ? undefined : base ** BigInt(pow);
}

function bytesOf(el: XmlElement, report: Report): bigint | undefined {
  const text = el.text();
  const scale = unitBytes(el.attr('unit'));
  if (!/^\d+$/.test(text)) report.fatal(el, `"${text}" is not a whole number`);
  else if (scale === undefined) report.fatal(el, `unknown unit "${el.attr('unit') ?? ''}" (libvirt's are b, KB, KiB, MB, MiB, GB, GiB, TB, TiB...)`);
  else return BigInt(text) * scale;
  return undefined;
}

const MIB = 1024n * 1024n;
const mib = (bytes: bigint): string => (bytes % MIB === 0n ? `${bytes / MIB} MiB` : `${bytes} bytes`);

function convertMemory(root: XmlElement, def: Mutable, report: Report): void {
  const memory = root.child('memory');
  if (memory === undefined) return report.missing(root, 'memory', 'a domain needs its memory size');
  memory.take();
  const bytes = bytesOf(memory, report);
  if (bytes === undefined) return;
  const whole = (bytes + MIB - 1n) / MIB;
  if (bytes % MIB !== 0n) report.issues.push({ path: memory.path, reason: `${bytes} bytes is not a whole number of MiB: virtq would give the guest ${whole} MiB`, order: memory.order, fatal: false });
  if (whole < 16n || whole > 4_194_304n) report.fatal(memory, `virtq gives a guest 16 MiB to 4 TiB, not ${mib(bytes)}`);
  else def.memoryMiB = Number(whole);
  const current = root.child('currentMemory');
  if (current === undefined) return;
  current.take();
  const now = bytesOf(current, report);
  if (now !== undefined && now !== bytes) report.drop(current, `virtq has no balloon: the guest would get all of its ${mib(bytes)}, not ${mib(now)}`);
}

function convertVcpu(root: XmlElement, def: Mutable, report: Report): void {
  const vcpu = root.child('vcpu');
  if (vcpu === undefined) return;
  vcpu.take();
  const text = vcpu.text();
  const n = Number(text);
  if (!/^\d+$/.test(text) || n < 1 || n > 288) return report.fatal(vcpu, `virtq gives a guest 1 to 288 vCPUs, not "${text}"`);
  def.vcpus = n;
  // placement='static' is libvirt's default and says nothing more; current=N is the same as virtq.
  const placement = vcpu.attr('placement');
  if (placement !== undefined && placement !== 'static') report.dropAttr(vcpu, 'placement', 'virtq does not place vCPUs: the host scheduler does');
  const current = vcpu.attr('current');
  if (current !== undefined && Number(current) !== n) report.dropAttr(vcpu, 'current', `virtq has no vCPU hot-plug: all ${n} vCPUs would be present from the start`);
}

function convertOs(root: XmlElement, def: Mutable, report: Report, opts: LibvirtConvertOptions): void {
  const os = root.child('os');
  const type = os?.child('type');
  if (os === undefined || type === undefined) return report.missing(root, os === undefined ? 'os' : 'os/type', 'a domain needs <os><type>hvm</type></os>');
  os.take();
  type.take();
  const kind = type.text();
  if (kind !== 'hvm') report.fatal(type, `virtq runs fully virtualised (hvm) QEMU guests, not "${kind}"`);
  const arch = type.attr('arch');
  if (arch !== undefined && arch !== 'x86_64') {
    if (arch === 'i686') report.dropAttr(type, 'arch', 'virtq runs qemu-system-x86_64: a 32-bit guest runs on its 64-bit machine');
    else report.fatalAttr(type, 'arch', `virtq runs x86_64 guests (qemu-system-x86_64), not ${arch}`);
  }
  const machine = type.attr('machine');
  if (machine !== undefined) def.machine = machine;
  const base = opts.baseDir ?? process.cwd();
  const path = (el: XmlElement): string => (isAbsolute(el.text()) ? el.text() : resolve(base, el.text()));
  const kernel = os.child('kernel');
  if (kernel !== undefined) {
    kernel.take();
    const initrd = os.child('initrd')?.take();
    const cmdline = os.child('cmdline')?.take();
    def.kernel = { path: path(kernel), ...(initrd === undefined ? {} : { initrd: path(initrd) }), ...(cmdline === undefined ? {} : { cmdline: cmdline.text() }) };
  } else if (os.child('initrd') !== undefined) {
    report.drop(os.child('initrd') as XmlElement, 'an initrd without a kernel is not used');
  }
  for (const boot of os.all('boot')) {
    boot.take();
    const dev = boot.attr('dev');
    if (dev !== 'hd') report.drop(boot, `virtq boots a kernel or the first disk, not "${dev ?? ''}"`);
  }
  if (os.attr('firmware') !== undefined) report.dropAttr(os, 'firmware', 'virtq boots QEMU\'s default firmware (SeaBIOS): UEFI is not carried over');
}

function convertCpu(root: XmlElement, def: Mutable, report: Report): void {
  const cpu = root.child('cpu');
  if (cpu === undefined) return;
  cpu.take();
  cpu.attr('check'); // how strictly libvirt checks the host: the guest sees the same CPU either way
  const model = cpu.child('model');
  const mode = cpu.attr('mode') ?? (model === undefined ? undefined : 'custom');
  if (mode === 'host-passthrough') {
    def.cpu = 'host';
    if (cpu.attr('migratable') === 'off') report.dropAttr(cpu, 'migratable', 'virtq\'s "host" CPU is QEMU\'s -cpu host, whose migratable=on hides non-migratable features');
  } else if (mode === 'maximum') {
    def.cpu = 'max';
  } else if (mode === 'host-model') {
    report.dropAttr(cpu, 'mode', 'virtq has no host-model CPU: give a named model (<model>) or host-passthrough; QEMU\'s default CPU would be used');
  } else if (mode === 'custom' && model !== undefined) {
    model.take();
    model.attr('fallback');
    const name = model.text();
    if (/^[A-Za-z0-9._+-]{1,64}$/.test(name)) def.cpu = name;
    else report.drop(model, `"${name}" is not a CPU model name virtq accepts`);
    if (cpu.attr('match') !== undefined && cpu.attr('match') !== 'exact') report.dropAttr(cpu, 'match', 'virtq gives the guest exactly the named model');
  } else if (mode !== undefined && mode !== 'custom') {
    report.dropAttr(cpu, 'mode', `virtq has no "${mode}" CPU mode`);
  }
  for (const t of cpu.all('topology')) report.drop(t, 'virtq gives QEMU a vCPU count only (-smp N): QEMU picks sockets, cores and threads');
  for (const f of cpu.all('feature')) report.drop(f, `virtq's CPU is a model name only: feature "${f.attr('name') ?? ''}" is not carried over`);
}

const ACTIONS = new Set(['destroy', 'restart', 'preserve']);

function convertLifecycle(root: XmlElement, def: Mutable, report: Report): void {
  const fields = [['on_poweroff', 'onPoweroff'], ['on_reboot', 'onReboot'], ['on_crash', 'onCrash']] as const;
  for (const [element, field] of fields) {
    const el = root.child(element);
    if (el === undefined) continue;
    el.take();
    const action = el.text();
    if (ACTIONS.has(action)) def[field] = action as LifecycleAction;
    else report.drop(el, `virtq's actions are destroy, restart and preserve, not "${action}"`);
  }
}

function convertDomainWide(root: XmlElement, def: Mutable, report: Report): void {
  const type = root.attr('type');
  if (type === 'kvm') def.accel = 'kvm';
  else if (type === 'qemu') def.accel = 'tcg';
  else report.fatalAttr(root, 'type', `virtq runs QEMU guests with KVM or TCG (type kvm or qemu), not "${type ?? ''}"`);
  root.attr('id'); // a running domain's number: not configuration
  const name = root.child('name');
  if (name === undefined) report.missing(root, 'name', 'a domain needs a name');
  else if (new RegExp(NAME_PATTERN).test(name.take().text())) def.name = name.text();
  else report.fatal(name, `"${name.text()}" is not a virtq VM name: 1 to 64 letters, digits, '.', '_', '+' or '-', not starting with '.' or '-'`);
  const uuid = root.child('uuid')?.take();
  const hex = uuid?.text().toLowerCase().replace(/-/g, '');
  if (uuid !== undefined && hex !== undefined && UUID_HEX.test(hex)) def.uuid = `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
  else if (uuid !== undefined) report.drop(uuid, `"${uuid.text()}" is not a UUID: virtq would make a new one`);
  const features = root.child('features')?.take();
  for (const f of features?.children ?? []) if (['acpi', 'apic', 'pae'].includes(f.name)) f.take(); // QEMU's PC defaults
  const clock = root.child('clock')?.take();
  const offset = clock?.attr('offset');
  if (clock !== undefined && offset !== undefined && offset !== 'utc') report.dropAttr(clock, 'offset', `virtq keeps the guest's clock in UTC (QEMU's default), not ${offset}`);
}

function failure(source: string, issues: readonly Issue[], lossy: boolean): VirtqError {
  const fatal = issues.filter((i) => i.fatal);
  const listed = (lossy || fatal.length > 0 ? fatal : issues).map((i) => `${i.path}: ${i.reason}`).join('; ');
  const leftOut = issues.map(({ path, reason }) => ({ path, reason }));
  const message = fatal.length > 0
    ? `${source}: no virtq definition can be made from this libvirt domain: ${listed}`
    : `${source}: ${issues.length} part${issues.length === 1 ? '' : 's'} of this libvirt domain cannot be carried over to virtq (--lossy leaves ${issues.length === 1 ? 'it' : 'them'} out): ${listed}`;
  return new VirtqError('INVALID_ARG', message, { details: { file: source, leftOut, fatal: fatal.map(({ path, reason }) => ({ path, reason })) } });
}

/**
 * Converts libvirt domain XML into a virtq definition. Throws INVALID_ARG when the XML is not
 * well-formed, is not a `<domain>`, lacks what every definition needs, or (unless `lossy`) has
 * anything virtq cannot carry over; `details.leftOut` lists each `{path, reason}`.
 */
export function convertLibvirtXml(xml: string, opts: LibvirtConvertOptions = {}): LibvirtConversion {
  const source = opts.source ?? 'the XML';
  const root = parseXml(xml, source);
  if (root.name !== 'domain') throw new VirtqError('INVALID_ARG', `${source}: the root element is <${root.name}>, not a libvirt <domain>`, { details: { file: source } });
  root.take();
  const def: Mutable = {};
  const report = new Report();
  convertDomainWide(root, def, report);
  convertMemory(root, def, report);
  convertVcpu(root, def, report);
  convertOs(root, def, report, opts);
  convertCpu(root, def, report);
  convertLifecycle(root, def, report);
  const devices = root.child('devices');
  if (devices !== undefined) convertDevices(devices.take(), def, report, { baseDir: opts.baseDir ?? process.cwd(), bridgeNetworks: opts.bridgeNetworks ?? {} });
  const issues = [...report.issues, ...leftovers(root, reasonFor, attrReason).map((l) => ({ ...l, fatal: false }))].sort((a, b) => a.order - b.order);
  if (issues.some((i) => i.fatal) || (issues.length > 0 && opts.lossy !== true)) throw failure(source, issues, opts.lossy === true);
  const ordered = orderFields(def);
  try {
    return { definition: definitionValidator.parse(ordered, 'definition'), leftOut: issues.map(({ path, reason }) => ({ path, reason })) };
  } catch (err) {
    const e = VirtqError.from(err);
    throw new VirtqError('INVALID_ARG', `${source}: the converted definition is not valid: ${e.message}`, { details: { file: source, ...e.details } });
  }
}

// The definition's fields in the order docs and dumpdef use.
function orderFields(def: Mutable): Mutable {
  const order: (keyof Definition)[] = ['name', 'uuid', 'memoryMiB', 'vcpus', 'machine', 'accel', 'cpu', 'emulator', 'kernel', 'disks', 'interfaces', 'onPoweroff', 'onReboot', 'onCrash'];
  const out: Record<string, unknown> = {};
  for (const k of order) if (def[k] !== undefined) out[k] = def[k];
  return out as Mutable;
}
