// Reads a VM definition file for `define` and `create`: JSON errors name the file, relative
// kernel, initrd and disk paths resolve against the file's directory (definitions hold absolute
// paths only), and schema errors name the offending field path.
import { readFile } from 'node:fs/promises';
import { dirname, isAbsolute, resolve } from 'node:path';
import { VirtqError, definitionValidator, type Definition } from '../protocol/index.js';

type Json = Record<string, unknown>;

const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

// Resolves one relative path field in place.
function absolutize(obj: Json, key: string, base: string): void {
  const value = obj[key];
  if (typeof value === 'string' && value !== '' && !isAbsolute(value)) obj[key] = resolve(base, value);
}

/** Makes the definition's kernel, initrd and disk paths absolute against `base`. */
export function resolveDefinitionPaths(def: Json, base: string): Json {
  const out: Json = { ...def };
  if (isObject(def['kernel'])) {
    const kernel = { ...def['kernel'] };
    absolutize(kernel, 'path', base);
    absolutize(kernel, 'initrd', base);
    out['kernel'] = kernel;
  }
  if (Array.isArray(def['disks'])) {
    out['disks'] = def['disks'].map((d: unknown) => {
      if (!isObject(d)) return d;
      const disk = { ...d };
      absolutize(disk, 'path', base);
      return disk;
    });
  }
  return out;
}

/** Reads the JSON object in `file` (relative to `cwd`); errors name the file and say what it was for. */
export async function readJsonObject(file: string, cwd: string, what: string): Promise<{ path: string; value: Json }> {
  const path = resolve(cwd, file);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    const why = e.code === 'ENOENT' ? 'no such file' : e.code === 'EACCES' ? 'permission denied' : e.code === 'EISDIR' ? 'is a directory' : e.message;
    throw new VirtqError('INVALID_ARG', `cannot read ${what} file ${file}: ${why}`, { details: { file: path } });
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new VirtqError('INVALID_ARG', `${file} is not valid JSON: ${(err as Error).message}`, { details: { file: path } });
  }
  if (!isObject(parsed)) throw new VirtqError('INVALID_ARG', `${file}: invalid ${what}: /: expected a JSON object`, { details: { file: path, path: '/' } });
  return { path, value: parsed };
}

/** Reads, resolves and validates the definition in `file` (relative to `cwd`). */
export async function readDefinitionFile(file: string, cwd: string): Promise<Definition> {
  const { path, value } = await readJsonObject(file, cwd, 'definition');
  const def = resolveDefinitionPaths(value, dirname(path));
  try {
    return definitionValidator.parse(def, 'definition');
  } catch (err) {
    const e = VirtqError.from(err);
    throw new VirtqError(e.code, `${file}: ${e.message}`, { details: { file: path, ...e.details } });
  }
}
