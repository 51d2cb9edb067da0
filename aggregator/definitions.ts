// Persistent definitions under etc/domains/ (NAME.json, 0600) and autostart markers under
// etc/autostart/ (NAME). Every write replaces the file atomically; a crash between the temp
// write and the rename leaves the old definition, and the stray temp file is ignored.
import { mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { normalizeDefinition, VirtqError, type Logger, type NormalizedDefinition } from '../protocol/index.js';
import { isTempName, writeFileAtomic } from '../drivers/fs/atomic-file.js';

/** A stored definition and its autostart flag. */
export interface StoredDefinition {
  definition: NormalizedDefinition;
  autostart: boolean;
}

/** The definition store of one root. */
export class DefinitionStore {
  private readonly domains: string;
  private readonly autostartDir: string;

  constructor(configDir: string, private readonly log: Logger) {
    this.domains = join(configDir, 'domains');
    this.autostartDir = join(configDir, 'autostart');
  }

  /** Every valid definition on disk; invalid files are logged and left alone, never deleted. */
  // Synchronous: it runs once, in recovery, before virtqemud serves anything; one file after the
  // other through fs/promises was four thread-pool round trips per VM, each a wait on a loaded host.
  async loadAll(): Promise<StoredDefinition[]> {
    mkdirSync(this.domains, { recursive: true, mode: 0o700 });
    mkdirSync(this.autostartDir, { recursive: true, mode: 0o700 });
    const autostart = new Set(readdirSync(this.autostartDir));
    const out: StoredDefinition[] = [];
    for (const file of readdirSync(this.domains)) {
      if (isTempName(file) || !file.endsWith('.json')) continue;
      try {
        const definition = normalizeDefinition(JSON.parse(readFileSync(join(this.domains, file), 'utf8')), () => {
          throw new VirtqError('INVALID_ARG', 'stored definition has no uuid');
        });
        if (`${definition.name}.json` !== file) throw new VirtqError('INVALID_ARG', `file name does not match the VM name "${definition.name}"`);
        out.push({ definition, autostart: autostart.has(definition.name) });
      } catch (err) {
        this.log.error({ file, err: VirtqError.from(err).message, msgId: 'DEFINITION_UNREADABLE' }, 'skipping a definition that cannot be loaded');
      }
    }
    return out;
  }

  /** Writes a definition atomically. */
  async save(def: NormalizedDefinition): Promise<void> {
    await writeFileAtomic(join(this.domains, `${def.name}.json`), `${JSON.stringify(def, null, 2)}\n`, 0o600);
  }

  /** Removes a definition and its autostart marker. */
  async remove(name: string): Promise<void> {
    await unlink(join(this.domains, `${name}.json`)).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'ENOENT') throw new VirtqError('OPERATION_FAILED', `cannot remove the definition of "${name}": ${err.message}`);
    });
    await this.setAutostart(name, false);
  }

  /** Creates or removes the autostart marker. */
  async setAutostart(name: string, on: boolean): Promise<void> {
    const marker = join(this.autostartDir, name);
    if (on) await writeFile(marker, '', { mode: 0o600 });
    else await unlink(marker).catch(() => undefined);
  }
}
