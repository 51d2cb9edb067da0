// The shims' runtime state files under a root, as tests read them.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { shimDir, type Layout } from '../../protocol/index.js';

/** Every readable state file (one being replaced is skipped: they are written atomically). */
export function readStateFiles<T>(layout: Layout): T[] {
  const dir = shimDir(layout);
  let files: string[];
  try {
    files = readdirSync(dir).filter((f) => f.endsWith('.json') && !f.startsWith('.'));
  } catch {
    return [];
  }
  return files.flatMap((f) => {
    try {
      return [JSON.parse(readFileSync(join(dir, f), 'utf8')) as T];
    } catch {
      return [];
    }
  });
}
