// Where a shim keeps its bundle's V8 code cache (shim/code-cache.ts): whoever spawns shims for a root
// (virtqemud's spawner, embed mode) names the root's cache dir in this variable, and the shim's entry
// reads it. A leaf: the entry bundles this file and nothing else of daemon/.
import { join } from 'node:path';
import type { Layout } from '../protocol/paths.js';

/** The environment variable the shim's entry reads. */
export const SHIM_CODE_CACHE_ENV = 'VIRTQ_SHIM_CODE_CACHE';

/** `env` with the code cache dir of `layout`'s root (beside the QEMU capability cache). */
export function withShimCodeCache(env: NodeJS.ProcessEnv, layout: Pick<Layout, 'state'>): NodeJS.ProcessEnv {
  return { ...env, [SHIM_CODE_CACHE_ENV]: join(layout.state, 'cache') };
}
