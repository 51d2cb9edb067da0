// The programs the CLI has commands for, by name: the one place a program's name turns back
// into its catalogue object.
import { VirtqError, adminProgram, networkProgram, nodedevProgram, secretProgram, storageProgram, virtqProgram, type Program } from '../protocol/index.js';

const PROGRAMS: Readonly<Record<string, Program>> = {
  [virtqProgram.name]: virtqProgram,
  [adminProgram.name]: adminProgram,
  [storageProgram.name]: storageProgram,
  [secretProgram.name]: secretProgram,
  [nodedevProgram.name]: nodedevProgram,
  [networkProgram.name]: networkProgram,
};

/** The catalogue of program `name`. */
export function programNamed(name: string): Program {
  const p = PROGRAMS[name];
  if (p === undefined) throw new VirtqError('INTERNAL', `the CLI has no program "${name}"`);
  return p;
}
