// dist/bin/virtq-shim.js: the shim's entry. It runs the shim's bundle (dist/bin/virtq-shim-body.cjs,
// built from shim/main.ts) through V8's code cache (shim/code-cache.ts). The body's import.meta.url
// is this file's URL, so paths it resolves beside itself are the same as when it was the entry.
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import { lendImport } from '../protocol/dynamic-import.js';
import { runBody } from './code-cache.js';
import { SHIM_CODE_CACHE_ENV } from '../daemon/shim-code-cache-env.js';

/** The body's SHA-256, written here by scripts/build.mjs: a cache is only ever read for the body it was made from. */
declare const __VIRTQ_SHIM_BODY_SHA__: string;

(globalThis as { __virtqBinUrl?: string }).__virtqBinUrl = import.meta.url;
lendImport((specifier) => import(specifier));
const cacheDir = process.env[SHIM_CODE_CACHE_ENV];
runBody({
  bodyPath: join(dirname(fileURLToPath(import.meta.url)), 'virtq-shim-body.cjs'),
  bodySha: __VIRTQ_SHIM_BODY_SHA__,
  cacheDir: cacheDir === undefined || cacheDir === '' ? undefined : cacheDir,
});
