// The generated docs: docs/protocol.md and docs/definition.schema.json must be exactly what the
// generator writes from the catalogue now, and the error and procedure tables must be complete.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { errorCatalogue } from '../../../protocol/errors.js';
import { repoRoot, wirePrograms } from '../../../scripts/check-wire.js';
import { METRICS_DOC_PATH, renderMetricsDoc } from '../../../scripts/gen-metrics-doc.js';
import { DEFINITION_SCHEMA_PATH, PROTOCOL_DOC_PATH, renderDefinitionSchema, renderProtocolDoc } from '../../../scripts/gen-docs.js';

const read = (path: string): string => readFileSync(join(repoRoot(), path), 'utf8');
const doc = read(PROTOCOL_DOC_PATH);

// The body of one "## " section of the doc.
function section(heading: string): string {
  const start = doc.indexOf(`\n## ${heading}\n`);
  expect(start, `docs/protocol.md has no "## ${heading}" section`).toBeGreaterThanOrEqual(0);
  const end = doc.indexOf('\n## ', start + 1);
  return doc.slice(start, end < 0 ? undefined : end);
}

// The first-column codes of a section's table rows.
const tableKeys = (body: string): string[] => [...body.matchAll(/^\| `([^`]+)` \|/gm)].map((m) => m[1] as string);

describe('generated docs', () => {
  it('docs/protocol.md is what the generator writes', () => {
    expect(doc, `${PROTOCOL_DOC_PATH} is out of date: run npm run gen:docs`).toBe(renderProtocolDoc());
  });

  it('docs/definition.schema.json is what the generator writes', () => {
    expect(read(DEFINITION_SCHEMA_PATH), `${DEFINITION_SCHEMA_PATH} is out of date: run npm run gen:docs`).toBe(renderDefinitionSchema());
  });

  it('docs/metrics.md is what the generator writes', () => {
    expect(read(METRICS_DOC_PATH), `${METRICS_DOC_PATH} is out of date: run npm run gen:docs`).toBe(renderMetricsDoc());
  });

  it('renders the same text twice', () => {
    expect(renderProtocolDoc()).toBe(renderProtocolDoc());
    expect(renderDefinitionSchema()).toBe(renderDefinitionSchema());
  });

  it('definition.schema.json is plain JSON Schema with the definition id', () => {
    const schema = JSON.parse(renderDefinitionSchema()) as Record<string, unknown>;
    expect(schema['$schema']).toBe('http://json-schema.org/draft-07/schema#');
    expect(schema['$id']).toBe('https://virtq.dev/schema/definition.json');
    expect(schema['required']).toEqual(['name', 'memoryMiB']);
  });
});

describe('docs/protocol.md errors', () => {
  const documented = tableKeys(section('Errors'));

  it('documents every error code of the catalogue', () => {
    const missing = Object.keys(errorCatalogue).filter((code) => !documented.includes(code));
    expect(missing, 'codes missing from docs/protocol.md: run npm run gen:docs').toEqual([]);
  });

  it('documents no error code that does not exist', () => {
    const dead = documented.filter((code) => !Object.hasOwn(errorCatalogue, code));
    expect(dead, 'docs/protocol.md lists codes the catalogue does not have: run npm run gen:docs').toEqual([]);
  });

  it('documents each code once', () => {
    expect(new Set(documented).size).toBe(documented.length);
  });
});

describe('docs/protocol.md procedures', () => {
  for (const program of wirePrograms) {
    it(`lists every procedure and event of ${program.name}, and no other`, () => {
      const body = section(`Program \`${program.name}\``);
      const procs = Object.keys(program.procs);
      const events = Object.keys(program.events);
      expect(tableKeys(body), 'run npm run gen:docs').toEqual([...procs, ...events]);
      for (const name of [...procs, ...events]) expect(body).toContain(`\`${program.name}.${name}\``);
    });
  }
});
