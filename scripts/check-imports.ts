// The import-boundary check STYLE.md promises: every product file's relative imports must point
// down the layering, and no files may import each other in a circle. Run by `npm test` (through
// test/unit/scripts/check-imports.test.ts) and by hand: `node dist/lib/scripts/check-imports.js`.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The top-level folders that hold product code, and what each may import besides itself. */
const MAY_IMPORT: Readonly<Record<string, readonly string[]>> = {
  protocol: [],
  // Drivers know nothing of RPC: of protocol/ they see only the error catalogue, the clock,
  // the definition types and how to reach etcd (the etcd lock plugin, as virtqemud does), and
  // node-crypto.ts (a leaf: SHA-256 and temp names without loading node:crypto, issue 15), and
  // dynamic-import.ts (a leaf: import() through the shim entry's loader when its body runs under node:vm).
  drivers: ['protocol/errors.ts', 'protocol/clock.ts', 'protocol/definition.ts', 'protocol/etcd-options.ts', 'protocol/node-crypto.ts', 'protocol/dynamic-import.ts'],
  daemon: ['protocol', 'drivers'],
  // The virt side reaches the secondary daemons through the public client only (ARCHITECTURE.md,
  // "Secondary daemons"): see MAY_NOT_IMPORT for the drivers it must not touch.
  shim: ['protocol', 'drivers', 'daemon', 'client'],
  aggregator: ['protocol', 'drivers', 'daemon', 'client'],
  client: ['protocol', 'daemon'],
  // One folder per secondary daemon; each sees its own driver, never another daemon's folder.
  storaged: ['protocol', 'drivers', 'daemon', 'client'],
  secretd: ['protocol', 'drivers', 'daemon', 'client'],
  networkd: ['protocol', 'drivers', 'daemon', 'client'],
  nodedevd: ['protocol', 'drivers', 'daemon', 'client'],
  cli: ['protocol', 'client'],
  scripts: ['protocol', 'drivers', 'daemon', 'client', 'cli'],
};

/** The secondary daemons' drivers: only their own daemon (and scripts) may import them. */
const DAEMON_DRIVERS: Readonly<Record<string, string>> = {
  'drivers/storage': 'storaged', 'drivers/secret': 'secretd', 'drivers/network': 'networkd', 'drivers/nodedev': 'nodedevd',
};

/** One broken rule, as a line a person can act on. */
export interface ImportViolation {
  kind: 'upward' | 'circle';
  message: string;
}

const IMPORT_RE = /(?:^|\n)\s*(?:import|export)\s[^'"]*?from\s+['"](\.[^'"]+)['"]|import\(\s*['"](\.[^'"]+)['"]\s*\)/g;

function productFiles(root: string): string[] {
  const out: string[] = [];
  const walk = (dir: string): void => {
    for (const name of readdirSync(dir)) {
      const full = join(dir, name);
      if (statSync(full).isDirectory()) walk(full);
      else if (name.endsWith('.ts') && !name.endsWith('.d.ts')) out.push(relative(root, full).split(sep).join('/'));
    }
  };
  for (const top of Object.keys(MAY_IMPORT)) {
    try {
      walk(join(root, top));
    } catch {
      // A layer that does not exist yet has nothing to check.
    }
  }
  return out.sort();
}

/** The repository-relative files `file` imports (relative imports only; `.js` maps to `.ts`). */
function importsOf(root: string, file: string): string[] {
  const text = readFileSync(join(root, file), 'utf8');
  const found = new Set<string>();
  for (const m of text.matchAll(IMPORT_RE)) {
    const spec = m[1] ?? m[2];
    if (spec === undefined) continue;
    const target = relative(root, resolve(root, dirname(file), spec)).split(sep).join('/').replace(/\.js$/, '.ts');
    found.add(target);
  }
  return [...found];
}

/** The secondary daemon that owns the driver `file` belongs to, if any. */
function driverOwner(file: string): string | undefined {
  const dir = file.split('/').slice(0, 2).join('/');
  return DAEMON_DRIVERS[dir];
}

function allowed(from: string, to: string): boolean {
  const fromTop = from.split('/')[0] ?? '';
  const toTop = to.split('/')[0] ?? '';
  const owner = driverOwner(to);
  if (owner !== undefined && fromTop !== owner && fromTop !== 'scripts' && driverOwner(from) !== owner) return false;
  if (fromTop === toTop) return true;
  return (MAY_IMPORT[fromTop] ?? []).some((rule) => rule === toTop || rule === to);
}

/** Circles among files: Tarjan's strongly connected components of size > 1 (or a self-import). */
function circles(graph: ReadonlyMap<string, readonly string[]>): string[][] {
  let index = 0;
  const indices = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const found: string[][] = [];
  const visit = (v: string): void => {
    indices.set(v, index);
    low.set(v, index);
    index += 1;
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!graph.has(w)) continue;
      if (!indices.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v) ?? 0, low.get(w) ?? 0));
      } else if (onStack.has(w)) {
        low.set(v, Math.min(low.get(v) ?? 0, indices.get(w) ?? 0));
      }
    }
    if (low.get(v) === indices.get(v)) {
      const component: string[] = [];
      let w: string | undefined;
      do {
        w = stack.pop();
        if (w === undefined) break;
        onStack.delete(w);
        component.push(w);
      } while (w !== v);
      if (component.length > 1 || (graph.get(v) ?? []).includes(v)) found.push(component.sort());
    }
  };
  for (const v of graph.keys()) if (!indices.has(v)) visit(v);
  return found;
}

/** Every upward import and every circle in the product code under `root`. */
export function checkImports(root: string): ImportViolation[] {
  const graph = new Map<string, string[]>();
  for (const file of productFiles(root)) graph.set(file, importsOf(root, file));
  const violations: ImportViolation[] = [];
  for (const [from, targets] of graph) {
    for (const to of targets) {
      if (allowed(from, to)) continue;
      const owner = driverOwner(to);
      const why = owner !== undefined && from.split('/')[0] !== owner
        ? `${to.split('/').slice(0, 2).join('/')}/ belongs to ${owner}/; reach that daemon through the client`
        : `${from.split('/')[0] ?? ''}/ may import only ${(MAY_IMPORT[from.split('/')[0] ?? ''] ?? []).join(', ') || 'itself'}`;
      violations.push({ kind: 'upward', message: `${from} imports ${to}: ${why}` });
    }
  }
  for (const c of circles(graph)) violations.push({ kind: 'circle', message: `circle: ${c.join(' -> ')}` });
  return violations;
}

const isMain = process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url);
if (isMain) {
  const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
  const violations = checkImports(process.argv[2] ?? root);
  for (const v of violations) process.stderr.write(`${v.kind}: ${v.message}\n`);
  process.stdout.write(`check-imports: ${violations.length} violation(s)\n`);
  process.exitCode = violations.length === 0 ? 0 : 1;
}
