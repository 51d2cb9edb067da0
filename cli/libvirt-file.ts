// Reads a libvirt domain XML file for `define --from-libvirt-xml` and `convert`: the converter
// of the client library, relative paths against the file's directory, what a lossy conversion
// left out written to stderr (one "virtq: warning:" line each), file errors naming the file.
import { readFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { InvalidArgumentError } from 'commander';
import { VirtqError, type Definition } from '../protocol/index.js';
import type { OptionSpec } from './derive.js';
import type { Sink } from './io.js';

/** `--lossy` and `--bridge-network`, shared by `convert` and `define --from-libvirt-xml`. */
export const LIBVIRT_OPTIONS: readonly OptionSpec[] = [
  { flags: '--lossy', key: 'lossy', description: 'leave out what virtq cannot carry over (listed on stderr) instead of failing' },
  {
    flags: '--bridge-network <bridge=network>', key: 'bridgeNetwork',
    description: 'an <interface type=\'bridge\'> on BRIDGE joins the virtnetworkd network NETWORK (repeatable)',
    parse: (value: string, previous?: unknown): Record<string, string> => {
      const at = value.indexOf('=');
      const bridge = value.slice(0, at);
      const network = value.slice(at + 1);
      if (at <= 0 || network === '') throw new InvalidArgumentError('give BRIDGE=NETWORK, e.g. br0=lan');
      return { ...(previous as Record<string, string> | undefined), [bridge]: network };
    },
  },
];

/** Reads and converts the libvirt domain XML in `file` (relative to `cwd`); warnings of a lossy conversion go to `stderr`. */
export async function readLibvirtDefinition(file: string, cwd: string, opts: Readonly<Record<string, unknown>>, stderr: Sink): Promise<Definition> {
  const path = resolve(cwd, file);
  let xml: string;
  try {
    xml = await readFile(path, 'utf8');
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    const why = e.code === 'ENOENT' ? 'no such file' : e.code === 'EACCES' ? 'permission denied' : e.code === 'EISDIR' ? 'is a directory' : e.message;
    throw new VirtqError('INVALID_ARG', `cannot read libvirt domain XML file ${file}: ${why}`, { details: { file: path } });
  }
  // Loaded on use: the XML parser is a fifth of the CLI's start for every other command.
  const { convertLibvirtXml } = await import('../client/libvirt/domain.js');
  const { definition, leftOut } = convertLibvirtXml(xml, {
    source: file,
    lossy: opts['lossy'] === true,
    baseDir: dirname(path),
    bridgeNetworks: (opts['bridgeNetwork'] ?? {}) as Record<string, string>,
  });
  for (const l of leftOut) stderr.write(`virtq: warning: left out ${l.path}: ${l.reason}\n`);
  return definition;
}
