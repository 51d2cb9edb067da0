// docs/guide-libvirt.md maps virsh to virtq: every virtq command must appear in it (in the
// mapping table, or among the commands with no virsh twin), so a new command is placed there.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { allCommands } from '../../../cli/program.js';
import { repoRoot } from '../../../scripts/check-wire.js';

describe('docs/guide-libvirt.md', () => {
  const doc = readFileSync(join(repoRoot(), 'docs/guide-libvirt.md'), 'utf8');

  it('names every virtq command in its virsh -> virtq mapping', () => {
    const missing = allCommands()
      .map((c) => (c.program === 'admin' ? `admin ${c.name}` : c.name))
      .filter((name) => !new RegExp(`\`${name.replace(/[-]/g, '\\-')}[\` ]`).test(doc));
    expect(missing).toEqual([]);
  });
});
