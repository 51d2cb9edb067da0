import { describe, expect, it } from 'vitest';
import { AclRules, adminProgram, procedureClasses, storageProgram, virtqProgram, type AclIdentity } from '../../../protocol/index.js';
import { lineColumn, parseAclText } from '../../../daemon/acl/acl-file.js';

const alice: AclIdentity = { kind: 'x509', dn: 'O=example,CN=alice' };
const ro: AclIdentity = { kind: 'unix', socket: 'ro', uid: 0, gid: 0 };
const owner: AclIdentity = { kind: 'unix', socket: 'rw', uid: 1000, gid: 100 };
const call = (proc: keyof typeof virtqProgram.procs, vm?: string) => ({ program: virtqProgram, proc, spec: virtqProgram.procs[proc], vm });

describe('AclRules', () => {
  it('lets the first matching rule decide, and allows when none matches', () => {
    const rules = new AclRules([
      { id: 'no-qmp', match: { x509: 'O=example,CN=*' }, procedures: ['qmp'], action: 'deny' },
      { match: { x509: 'O=example,CN=alice' }, procedures: ['lifecycle', 'read'], vms: ['web*'], action: 'allow' },
      { match: { x509: 'O=example,CN=*' }, procedures: ['*'], action: 'deny' },
    ]);
    expect(rules.decide(alice, call('qemuMonitorCommand', 'web1'))).toEqual({ allowed: false, rule: 'no-qmp' });
    expect(rules.decide(alice, call('shutdown', 'web1'))).toEqual({ allowed: true, rule: '#2' });
    expect(rules.decide(alice, call('shutdown', 'db1'))).toEqual({ allowed: false, rule: '#3' });
    expect(rules.decide(alice, call('listDomains'))).toEqual({ allowed: false, rule: '#3' });
    // The listing is filtered row by row, so a rule naming VMs applies to it.
    expect(rules.decide(alice, { ...call('listDomains'), perVmFiltered: true })).toEqual({ allowed: true, rule: '#2' });
    expect(rules.decide({ kind: 'x509', dn: 'O=other,CN=alice' }, call('shutdown', 'db1'))).toEqual({ allowed: true, rule: undefined });
  });

  it('matches unix users and groups on the read-write and admin sockets, and anonymous-ro on the read-only one', () => {
    const rules = new AclRules([
      { match: { anonymousRo: true }, procedures: ['getDefinition'], action: 'deny' },
      { match: { uid: 1000 }, procedures: ['virtq.destroy'], action: 'deny' },
      { match: { gid: 100 }, procedures: ['devices'], action: 'deny' },
    ]);
    expect(rules.decide(ro, call('getDefinition', 'a')).allowed).toBe(false);
    expect(rules.decide(owner, call('getDefinition', 'a')).allowed).toBe(true);
    expect(rules.decide(owner, call('destroy', 'a')).rule).toBe('#2');
    expect(rules.decide(owner, call('attachDisk', 'a')).rule).toBe('#3');
    expect(rules.decide({ ...owner, uid: 0, gid: 0 }, call('destroy', 'a')).allowed).toBe(true);
    expect(rules.decide(alice, call('destroy', 'a')).allowed).toBe(true);
  });

  it('derives classes from the catalogue', () => {
    expect(procedureClasses(virtqProgram, 'getState', virtqProgram.procs.getState)).toEqual(['read']);
    expect(procedureClasses(virtqProgram, 'openConsole', virtqProgram.procs.openConsole)).toEqual(['console']);
    expect(procedureClasses(virtqProgram, 'detachInterface', virtqProgram.procs.detachInterface)).toEqual(['devices']);
    expect(procedureClasses(virtqProgram, 'define', virtqProgram.procs.define)).toEqual(['lifecycle']);
    expect(procedureClasses(storageProgram, 'listPools', storageProgram.procs.listPools)).toEqual(['read', 'storage']);
    expect(procedureClasses(adminProgram, 'setLimits', adminProgram.procs.setLimits)).toEqual(['admin']);
  });
});

describe('parseAclText', () => {
  it('names the line and column of a syntax error', () => {
    const text = '{\n  "rules": [\n    { "match": {}, }\n  ]\n}\n';
    expect(() => parseAclText(text, '/x/acl.json')).toThrow(/^\/x\/acl\.json:3:20: /);
    expect(lineColumn('ab\ncd', 4)).toEqual({ line: 2, column: 2 });
  });

  it('names the field of a bad rule', () => {
    expect(() => parseAclText('{"rules":[{"match":{},"procedures":["*"],"action":"maybe"}]}', 'f')).toThrow(/action/);
    expect(() => parseAclText('{"rules":[{"match":{"user":"x"},"procedures":["*"],"action":"deny"}]}', 'f')).toThrow(/match/);
  });
});
