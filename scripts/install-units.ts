// Writes virtq's systemd units (daemon/systemd-units.ts) into a unit directory and prints their
// names, one a line, for scripts/install.sh to enable. Shipped in the package
// (dist/lib/scripts/install-units.js) so an npm-installed virtq can install its units too.
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { systemdUnits } from '../daemon/systemd-units.js';

const USAGE = `usage: node install-units.js --bin-dir DIR [--unit-dir DIR] [--node PATH]
  --bin-dir DIR    where virtq's binaries are (virtqemud, virtstoraged, ...)
  --unit-dir DIR   where the unit files go (default /etc/systemd/system)
  --node PATH      the node binary the daemons run on (default: this one)`;

/** Writes the units for `argv` (without node and the script); returns the names written. */
export function installUnits(argv: readonly string[], execPath: string): string[] {
  const { values } = parseArgs({ args: [...argv], options: { 'bin-dir': { type: 'string' }, 'unit-dir': { type: 'string' }, node: { type: 'string' } }, strict: true });
  const binDir = values['bin-dir'];
  if (binDir === undefined) throw new Error(`--bin-dir is required\n${USAGE}`);
  const unitDir = values['unit-dir'] ?? '/etc/systemd/system';
  mkdirSync(unitDir, { recursive: true });
  const units = systemdUnits({ binDir: resolve(binDir), nodeDir: dirname(resolve(values.node ?? execPath)) });
  for (const u of units) {
    // Each file appears whole: systemd may be reading the directory meanwhile.
    const tmp = join(unitDir, `.${u.name}.tmp`);
    writeFileSync(tmp, u.text, { mode: 0o644 });
    renameSync(tmp, join(unitDir, u.name));
  }
  return units.map((u) => u.name);
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  try {
    process.stdout.write(`${installUnits(process.argv.slice(2), process.execPath).join('\n')}\n`);
  } catch (err) {
    process.stderr.write(`install-units: ${(err as Error).message}\n`);
    process.exit(2);
  }
}
