// The import-boundary check: the repository passes it, and it does catch what it is for.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { checkImports } from '../../../scripts/check-imports.js';
import { repoRoot } from '../../../scripts/check-wire.js';
import { tmpRoot, type TmpRoot } from '../../helpers/tmp-root.js';

describe('import boundaries', () => {
  let tmp: TmpRoot | undefined;
  afterEach(() => { tmp?.remove(); tmp = undefined; });

  const tree = (files: Record<string, string>): string => {
    tmp = tmpRoot();
    for (const [path, text] of Object.entries(files)) {
      mkdirSync(join(tmp.dir, path, '..'), { recursive: true });
      writeFileSync(join(tmp.dir, path), text);
    }
    return tmp.dir;
  };

  it('finds no upward import and no circle in the product code', () => {
    expect(checkImports(repoRoot()).map((v) => v.message)).toEqual([]);
  });

  it('reports an upward import, naming both files and the rule', () => {
    const root = tree({
      'protocol/a.ts': "import { x } from '../shim/b.js';\nexport const a = x;\n",
      'shim/b.ts': 'export const x = 1;\n',
      'drivers/d.ts': "import type { P } from '../protocol/server.js';\nexport type D = P;\n",
      'protocol/server.ts': 'export type P = 1;\n',
    });
    const messages = checkImports(root).map((v) => v.message);
    expect(messages).toContain('protocol/a.ts imports shim/b.ts: protocol/ may import only itself');
    expect(messages.some((m) => m.startsWith('drivers/d.ts imports protocol/server.ts'))).toBe(true);
  });

  it('keeps a secondary daemon\'s driver to that daemon: the virt side must use the client', () => {
    const root = tree({
      'shim/a.ts': "import { pools } from '../drivers/storage/pools.js';\nexport const a = pools;\n",
      'storaged/b.ts': "import { pools } from '../drivers/storage/pools.js';\nexport const b = pools;\n",
      'drivers/storage/pools.ts': "import { x } from '../fs/atomic.js';\nexport const pools = x;\n",
      'drivers/fs/atomic.ts': 'export const x = 1;\n',
    });
    expect(checkImports(root).map((v) => v.message)).toEqual([
      'shim/a.ts imports drivers/storage/pools.ts: drivers/storage/ belongs to storaged/; reach that daemon through the client',
    ]);
  });

  it('reports a circle, type-only imports included', () => {
    const root = tree({
      'shim/a.ts': "import { b } from './b.js';\nexport const a = b;\n",
      'shim/b.ts': "import type { C } from './c.js';\nexport const b = 1 as C;\n",
      'shim/c.ts': "export { a } from './a.js';\nexport type C = number;\n",
      'shim/ok.ts': "import { a } from './a.js';\nexport const ok = a;\n",
    });
    expect(checkImports(root)).toEqual([{ kind: 'circle', message: 'circle: shim/a.ts -> shim/b.ts -> shim/c.ts' }]);
  });
});
