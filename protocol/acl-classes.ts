// The procedure classes access rules name (`read`, `lifecycle`, `devices`, `qmp`, `console`,
// `admin`, `registry`, and one per secondary daemon's program), derived from the catalogue:
// a read-only procedure is `read`, a program other than `virtq` is its own class, and the
// writes of `virtq` are split by what they touch. No procedure is listed by hand except those.
import type { Program, ProcSpec } from './catalogue.js';

/** Every class a rule may name. */
export const PROCEDURE_CLASSES = ['read', 'lifecycle', 'devices', 'qmp', 'console', 'admin', 'registry', 'storage', 'secret', 'network', 'nodedev'] as const;
/** A procedure class. */
export type ProcedureClass = (typeof PROCEDURE_CLASSES)[number];

const OWN_CLASS: Readonly<Record<string, ProcedureClass>> = { admin: 'admin', registry: 'registry', storage: 'storage', secret: 'secret', network: 'network', nodedev: 'nodedev' };

/** The classes of `program.proc`: `read` for read-only ones, plus the program's or the write's own. */
export function procedureClasses(program: Pick<Program, 'name'>, proc: string, spec: Pick<ProcSpec, 'readonly' | 'stream'>): ProcedureClass[] {
  const classes: ProcedureClass[] = spec.readonly ? ['read'] : [];
  const own = OWN_CLASS[program.name];
  if (own !== undefined) return [...classes, own];
  if (spec.readonly) return classes;
  if (proc === 'qemuMonitorCommand') return ['qmp'];
  if (proc === 'openConsole') return ['console'];
  if (/^(attach|detach)[A-Z]/.test(proc)) return ['devices'];
  // Every other write of the VM program defines, starts, stops or changes a VM.
  return ['lifecycle'];
}
