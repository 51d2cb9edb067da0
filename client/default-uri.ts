// The URI a client uses when none is given (libvirt's uri_default): its own module, so the
// clients of the secondary daemons need not load the rest of the library.
import { defaultUri } from '../protocol/index.js';

/** The URI used when none is given: `VIRTQ_DEFAULT_URI`, else session (or system for root). */
export function resolveDefaultUri(opts: { env?: NodeJS.ProcessEnv; uid?: number } = {}): string {
  return defaultUri(opts.env ?? process.env, opts.uid ?? process.getuid?.() ?? 0);
}
