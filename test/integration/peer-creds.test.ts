// Access rules matching on unix uid/gid with real clients of other users (decision 0029): the
// read-write socket opened to everyone (as an administrator grants a group), clients run as
// nobody and as uid 1234 in group 100 with setpriv, each identified by its own credentials.
import { execFile } from 'node:child_process';
import { chmodSync, writeFileSync } from 'node:fs';
import { promisify } from 'node:util';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { connect } from '../../client/index.js';
import type { AclRule } from '../../protocol/index.js';
import { ServiceHarness } from '../helpers/service-harness.js';
import { idleGuest } from '../helpers/test-guest.js';
import { tmpRoot } from '../helpers/tmp-root.js';

const run = promisify(execFile);
const CLIENT = new URL('../../dist/lib/client/index.js', import.meta.url).pathname;
const idleDef = (name: string) => ({ name, memoryMiB: 32, vcpus: 1, accel: 'tcg' as const, kernel: { path: idleGuest().kernel } });
const RULES: AclRule[] = [
  { id: 'nobody-read', match: { uid: 65534 }, procedures: ['read'], action: 'allow' },
  { id: 'nobody-rest', match: { uid: 65534 }, procedures: ['*'], action: 'deny' },
  { id: 'group-100-no-define', match: { gid: 100 }, procedures: ['define', 'undefine'], action: 'deny' },
];

/** Runs, as `uid`/`gid`, a client that tries `listDomains` and `define`, and returns what each gave. */
async function asUser(uri: string, uid: number, gid: number, vm: string): Promise<{ list: unknown; define: unknown }> {
  const script = `
    import { connect } from ${JSON.stringify(CLIENT)};
    const c = await connect(${JSON.stringify(uri)});
    const out = {};
    const get = async (p) => { try { return { ok: await p }; } catch (e) { return { code: e.code, rule: e.details?.rule, message: e.message }; } };
    out.list = await get(c.virtq.listDomains({}).then((r) => r.domains.map((d) => d.name)));
    out.define = await get(c.virtq.define({ definition: ${JSON.stringify(idleDef(vm))} }).then(() => 'defined'));
    c.close();
    console.log(JSON.stringify(out));`;
  const { stdout } = await run('setpriv', [`--reuid=${uid}`, `--regid=${gid}`, '--clear-groups', process.execPath, '--input-type=module', '-e', script]);
  return JSON.parse(stdout) as { list: unknown; define: unknown };
}

describe('access rules on unix uid and gid', () => {
  let h: ServiceHarness;
  beforeEach(() => { h = new ServiceHarness(tmpRoot()); });
  afterEach(async () => { await h.cleanup(); });

  it('identifies each local client by its own uid and gid', async () => {
    writeFileSync(h.root.path('acl.json'), JSON.stringify({ rules: RULES }));
    await h.start('virtqemud', ['--acl', h.root.path('acl.json')]);
    // As an administrator would grant a group the read-write socket.
    chmodSync(h.root.dir, 0o755);
    chmodSync(h.layout.runtime, 0o755);
    chmodSync(h.sockets('virtqemud').rw, 0o666);
    const uri = h.uri('qemu');
    const owner = await connect(uri);
    await owner.virtq.define({ definition: idleDef('root1') });

    // nobody: reads, but nothing else (its own rule, not the owner's default).
    const nobody = await asUser(uri, 65534, 65534, 'nobody1');
    expect(nobody.list).toEqual({ ok: ['root1'] });
    expect(nobody.define).toMatchObject({ code: 'PERMISSION_DENIED', rule: 'nobody-rest', message: expect.stringContaining('unix uid 65534 gid 65534') });
    // uid 1234 in group 100: the gid rule denies define; other calls keep the socket's access.
    const user = await asUser(uri, 1234, 100, 'user1');
    expect(user.list).toEqual({ ok: ['root1'] });
    expect(user.define).toMatchObject({ code: 'PERMISSION_DENIED', rule: 'group-100-no-define', message: expect.stringContaining('unix uid 1234 gid 100') });
    // uid 1234 in another group: no rule matches, the read-write socket's access.
    expect((await asUser(uri, 1234, 1234, 'user2')).define).toEqual({ ok: 'defined' });
    // root (the owner) is unaffected.
    await owner.virtq.define({ definition: idleDef('root2') });
    expect((await owner.virtq.listDomains({})).domains.map((d) => d.name).sort()).toEqual(['root1', 'root2', 'user2']);
    owner.close();
  }, 60_000);
});
