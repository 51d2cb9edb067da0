// Reading a daemon's access-rules file: JSON validated against the published schema
// (docs/acl.schema.json, from protocol's AclFile). A syntax error names the line and column, a
// schema error the path of the field; either way the caller keeps the rules it had.
import { statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { AclFile, AclRules, VirtqError, lazyValidator } from '../../protocol/index.js';

// Compiled on first use (a daemon with no rules file never needs it); its id names the check
// generated for the shim's bundle (scripts/shim-checks.mjs).
const validator = lazyValidator(AclFile, 'acl-file');

/** Line and column (1-based) of character `offset` in `text`. */
export function lineColumn(text: string, offset: number): { line: number; column: number } {
  const before = text.slice(0, Math.max(0, offset));
  const line = before.split('\n').length;
  return { line, column: before.length - before.lastIndexOf('\n') };
}

/** Parses the text of a rules file; INVALID_ARG with `file:line:column` for bad JSON, the field's path for a bad rule. */
export function parseAclText(text: string, file: string): AclRules {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    const message = (err as Error).message;
    const at = /position (\d+)/.exec(message);
    const pos = at === null ? text.length : Number(at[1]);
    const { line, column } = lineColumn(text, pos);
    throw new VirtqError('INVALID_ARG', `${file}:${line}:${column}: ${message.replace(/ in JSON at position \d+.*$/, '')}`, { details: { file, line, column } });
  }
  const parsed = validator.parse(value, `access rules ${file}`) as AclFile;
  return new AclRules(parsed.rules);
}

/** Reads the rules file at `file`; undefined when there is none (the default: no rules). */
export async function readAclFile(file: string): Promise<AclRules | undefined> {
  // The usual case, no rules file, answered without building an ENOENT error (its stack and
  // message) on every daemon's start; EACCES and the like still throw below.
  let text: string;
  try {
    if (statSync(file, { throwIfNoEntry: false }) === undefined) return undefined;
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new VirtqError('INVALID_ARG', `cannot read access rules ${file}: ${(err as Error).message}`, { cause: err });
  }
  return parseAclText(text, file);
}
