// Pins the sets derived from the catalogue: which socket classes serve which program (the ACL,
// with its exact messages), the stream procedures, what virtqemud answers from its registry and
// how embedded mode serves each procedure. A change here is a change of behaviour.
import { describe, expect, it } from 'vitest';
import {
  adminProgram, procNames, refusal, registryProgram, virtqProgram,
  type Program, type SocketClass, type StreamProcs, type VirtqProgram,
} from '../../../protocol/index.js';

const sockets: readonly SocketClass[] = ['rw', 'ro', 'admin'];

/** The ACL of one program as a table: socket class -> [allowed procedures, refusal of the first refused one]. */
function acl(program: Program): Record<SocketClass, { allowed: string[]; refused?: string }> {
  const out = {} as Record<SocketClass, { allowed: string[]; refused?: string }>;
  for (const socket of sockets) {
    const allowed: string[] = [];
    let refused: string | undefined;
    for (const [name, spec] of Object.entries(program.procs)) {
      const why = refusal(program, name, spec, socket);
      if (why === undefined) allowed.push(name);
      else refused ??= why;
    }
    out[socket] = refused === undefined ? { allowed } : { allowed, refused };
  }
  return out;
}

describe('the catalogue', () => {
  it('serves each program on the socket classes it declares', () => {
    expect(virtqProgram.sockets).toEqual(['rw', 'ro']);
    expect(registryProgram.sockets).toEqual(['rw']);
    expect(adminProgram.sockets).toEqual(['admin']);
  });

  it('derives the ACL of virtq: everything on rw, the read-only procedures on ro, nothing on admin', () => {
    const t = acl(virtqProgram);
    expect(t.rw.allowed).toEqual(Object.keys(virtqProgram.procs));
    expect(t.ro.allowed).toEqual(['getState', 'getInfo', 'getDefinition', 'blockStats', 'memoryStats', 'subscribeEvents', 'listDomains', 'lookupByName', 'lookupByUUID', 'interfaceAddresses', 'getEvents', 'snapshotList', 'snapshotInfo', 'getJobInfo']);
    expect(t.ro.refused).toBe('virtq.shutdown changes state and is refused on the read-only socket; use the read-write socket');
    expect(t.admin).toEqual({ allowed: [], refused: 'virtq.getState is not served on the admin socket' });
  });

  it('derives the ACL of registry: the read-write socket only', () => {
    const t = acl(registryProgram);
    expect(t.rw.allowed).toEqual(['register', 'update', 'unregister']);
    expect(t.ro).toEqual({ allowed: [], refused: 'registry.register changes state and is refused on the read-only socket; use the read-write socket' });
    expect(t.admin).toEqual({ allowed: [], refused: 'registry.register is not served on the admin socket' });
  });

  it('derives the ACL of admin: the admin socket only, reads and writes', () => {
    const t = acl(adminProgram);
    expect(t.admin.allowed).toEqual(Object.keys(adminProgram.procs));
    expect(t.rw).toEqual({ allowed: [], refused: 'admin.serverInfo is served on the admin socket only' });
    expect(t.ro).toEqual({ allowed: [], refused: 'admin.serverInfo is served on the admin socket only' });
  });

  it('marks openConsole, and only it, as a stream', () => {
    expect(procNames(virtqProgram.procs, (s) => s.stream)).toEqual(['openConsole']);
    expect(procNames(adminProgram.procs, (s) => s.stream)).toEqual([]);
    expect(procNames(registryProgram.procs, (s) => s.stream)).toEqual([]);
    const stream: StreamProcs<VirtqProgram> = 'openConsole';
    expect(stream).toBe('openConsole');
  });

  it('says which per-VM calls virtqemud answers from its registry', () => {
    const cached = Object.entries(virtqProgram.procs).flatMap(([n, s]) => (s.hostCache === undefined ? [] : [[n, s.hostCache]]));
    expect(cached).toEqual([['getState', ['inactive', 'active']], ['getInfo', ['inactive', 'active']], ['getDefinition', ['inactive']]]);
    for (const [n] of cached) expect(virtqProgram.procs[n as keyof VirtqProgram['procs']].perVm).toBe(true);
  });

  it('says how embedded mode serves each procedure', () => {
    const mode = (m: string) => procNames(virtqProgram.procs, (s) => (s.embed ?? 'shim') === m);
    expect(mode('router')).toEqual(['subscribeEvents', 'listDomains', 'lookupByName', 'lookupByUUID', 'create']);
    expect(mode('unavailable')).toEqual(['define', 'undefine', 'start', 'setAutostart', 'restore', 'managedSaveRemove', 'snapshotList', 'snapshotInfo', 'migratePrepare', 'migrateSwitchover']);
    expect(mode('shim')).toEqual(procNames(virtqProgram.procs, (s) => s.perVm));
  });
});
