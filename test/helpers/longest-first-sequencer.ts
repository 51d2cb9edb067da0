// vitest's sequencer with the order of file-order.ts (longest first); sharding is vitest's own.
import { statSync } from 'node:fs';
import { relative } from 'node:path';
import { BaseSequencer, type TestSpecification } from 'vitest/node';
import { orderFiles } from './file-order.js';

export class LongestFirstSequencer extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const root = this.ctx.config.root;
    const facts = files.map((spec) => {
      const path = relative(root, spec.moduleId).split('\\').join('/');
      // The same key vitest's own sequencer reads its cache with.
      const cached = this.ctx.cache.getFileTestResults(`${spec.project.name}:${path}`);
      let size = 0;
      try { size = statSync(spec.moduleId).size; } catch { /* a file gone since collection: vitest reports it */ }
      return { path, size, spec, ...(cached === undefined ? {} : { cachedMs: cached.duration }) };
    });
    return orderFiles(facts).map((f) => f.spec);
  }
}
