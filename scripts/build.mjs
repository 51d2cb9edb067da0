// Builds virtq: tsc type-checks and emits the library (dist/lib, with declarations); esbuild
// bundles each daemon and the CLI into one file (dist/bin) so a process loads one module graph
// — that is what keeps a shim near 15 MiB PSS (docs/decisions/0002-shim-footprint.md).
import { build } from 'esbuild';
import { execFileSync } from 'node:child_process';
import { chmodSync } from 'node:fs';

const LEAN = '--max-semi-space-size=1 --max-old-space-size=64 --v8-pool-size=1';
const binaries = [
  { entry: 'shim/main.ts', out: 'dist/bin/virtq-shim.js', shebang: `#!/usr/bin/env -S UV_THREADPOOL_SIZE=1 node ${LEAN}` },
  { entry: 'aggregator/main.ts', out: 'dist/bin/virtqemud.js', shebang: '#!/usr/bin/env -S node --max-semi-space-size=4' },
  { entry: 'cli/main.ts', out: 'dist/bin/virtq.js', shebang: '#!/usr/bin/env node' },
];

// dist/ is overwritten in place, never removed first: tests running meanwhile keep their binaries.
execFileSync(process.execPath, ['node_modules/typescript/bin/tsc', '-p', 'tsconfig.build.json'], { stdio: 'inherit' });
await Promise.all(binaries.map(async (b) => {
  await build({
    entryPoints: [b.entry],
    outfile: b.out,
    bundle: true,
    platform: 'node',
    target: 'node20',
    format: 'esm',
    minifyWhitespace: false,
    sourcemap: false,
    legalComments: 'none',
    // cbor-extract is cbor-x's optional native accelerator; pure JS is used without it.
    external: ['cbor-extract'],
    banner: { js: `${b.shebang}\nimport { createRequire as __vqCreateRequire } from 'node:module'; const require = __vqCreateRequire(import.meta.url);` },
    logLevel: 'warning',
  });
  chmodSync(b.out, 0o755);
}));
