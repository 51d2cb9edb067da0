// The `nodedev` program's commands (virsh's nodedev-* names), built from the catalogue by
// callCommand; this table holds what differs: a table for the listing, the full record as JSON
// for nodedev-info (virsh prints XML there), and nodedev-event, which waits for device events.
import { NodeDeviceEvent, VirtqError, lazyValidator, nodedevProgram, type NodeDeviceRow } from '../protocol/index.js';
import { callCommand, type CallAdapter, type CommandSpec, type RunContext } from './command.js';
import { numberParser, type Input } from './derive.js';
import { objectTable } from './render.js';
import { formatSize } from './size-format.js';

type NodedevProc = keyof typeof nodedevProgram.procs & string;

const isDeviceEvent = lazyValidator(NodeDeviceEvent);
const words = (...parts: Array<string | undefined | false>): string => parts.filter((p): p is string => typeof p === 'string' && p !== '').join(' ');
const ids = (vendor: string | undefined, product: string | undefined): string | undefined => (vendor === undefined ? undefined : `${vendor}:${product ?? '?'}`);

/** What a row's DESCRIPTION column says: the few facts that tell one device of a kind from another. */
export function describeRow(r: NodeDeviceRow): string {
  switch (r.cap) {
    case 'pci': return words(r.address, ids(r.vendorId, r.productId), r.class !== undefined && `class ${r.class}`, r.driver !== undefined && `driver ${r.driver}`, r.iommuGroup !== undefined && `iommu ${r.iommuGroup}`);
    case 'usb': return words(ids(r.vendorId, r.productId), r.product);
    case 'net': return words(r.interface, r.address, r.operstate, r.virtual && '(virtual)');
    case 'block': return words(`/dev/${r.device}`, r.sizeBytes !== undefined && formatSize(r.sizeBytes), r.partition !== undefined && `partition ${r.partition}`, r.virtual && '(virtual)');
  }
}

const rows = (list: NodeDeviceRow[]): string =>
  list.length === 0 ? 'No devices\n' : objectTable(list.map((r) => ({ name: r.name, cap: r.cap, parent: r.parent ?? '', description: describeRow(r) })));

async function runEvent(ctx: RunContext, input: Input): Promise<void> {
  const loop = input.opts['loop'] === true;
  const timeoutSec = input.opts['timeout'] as number | undefined;
  const conn = await ctx.connectService();
  await conn.call('subscribeEvents', {});
  const events = conn.events()[Symbol.asyncIterator]();
  let timedOut = false;
  const timer = timeoutSec === undefined ? undefined : ctx.io.clock.setTimeout(() => {
    timedOut = true;
    void events.return?.();
  }, timeoutSec * 1000);
  let count = 0;
  try {
    for (;;) {
      const r = await events.next();
      if (r.done === true) break;
      const ev = r.value;
      if (ev.prog !== nodedevProgram.name || ev.name !== 'device' || !isDeviceEvent.check(ev.body)) continue;
      count++;
      const body = ev.body;
      if (ctx.json) ctx.printJson(body, true);
      else ctx.print(`event 'device' for node device '${body.name}': ${body.event} (${body.cap})\n`);
      if (!loop) break;
    }
  } finally {
    timer?.dispose();
  }
  if (count === 0 && !timedOut) throw new VirtqError('CONNECTION_CLOSED', 'the connection closed before any event arrived');
  if (loop && !ctx.json) ctx.print(`events received: ${count}\n`);
}

const adapters: Readonly<Partial<Record<NodedevProc, CallAdapter>>> = {
  listDevices: {
    render: (r) => rows((r as { devices: NodeDeviceRow[] }).devices),
    notes: 'Names are libvirt\'s: pci_DDDD_BB_SS_F, usb_usbN or usb_BUS_PORT[_PORT...], net_IFACE_MAC, block_DEV.',
  },
  getDevice: {
    render: (r) => `${JSON.stringify(r, null, 2)}\n`,
    notes: 'Prints the whole record as JSON (virsh\'s nodedev-dumpxml prints XML); --json prints the same document.',
  },
  subscribeEvents: {
    options: [
      { flags: '--loop', key: 'loop', description: 'keep printing events (default: exit after the first)' },
      { flags: '--timeout <seconds>', key: 'timeout', description: 'stop waiting after this many seconds (exit status 0)', parse: numberParser('--timeout', { type: 'number', minimum: 0, maximum: 86_400 }) },
    ],
    output: NodeDeviceEvent,
    jsonLines: true,
    notes: 'Waits for devices to appear or go (virtnodedevd polls sysfs, every 2 s by default). Without --loop,\n' +
      'prints the first event and exits. With --loop, prints events until --timeout passes (exit status 0)\n' +
      'or the server closes the connection, then the number received.',
    run: runEvent,
  },
};

/** Every node device command: the catalogue's CLI procedures. */
export function nodedevCommands(): CommandSpec[] {
  return (Object.entries(nodedevProgram.procs) as [NodedevProc, (typeof nodedevProgram.procs)[NodedevProc]][])
    .filter(([, spec]) => spec.cli !== undefined)
    .map(([procName]) => callCommand(nodedevProgram, procName, adapters[procName]));
}
