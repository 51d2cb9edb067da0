// Where a VM that does not boot gets its state from: a save image (restore, managed save) or the
// stream of a live migration. Either way its QEMU starts with `-incoming defer` and the shim feeds
// it (shim/vm/incoming.ts); virtqemud asks for one with the shim's --restore or --incoming.

/** A VM's state comes from a checked save image, or from a live migration's source. */
export type IncomingState = { kind: 'image'; file: string } | { kind: 'migration'; transport: 'unix' | 'tcp' };

/** The virtq-shim arguments that start a VM from `incoming` (none: it boots). */
export function incomingShimArgs(incoming: IncomingState | undefined): string[] {
  if (incoming === undefined) return [];
  return incoming.kind === 'image' ? ['--restore', incoming.file] : ['--incoming', incoming.transport];
}
