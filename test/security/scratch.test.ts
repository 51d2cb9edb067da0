import { afterAll, it } from 'vitest';
import { execSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { ShimHarness } from '../helpers/shim-harness.js';
import { idleGuest } from '../helpers/test-guest.js';
import { tmpRoot } from '../helpers/tmp-root.js';

const h = new ShimHarness(tmpRoot());
afterAll(async () => { await h.cleanup(); });
const def = (name: string, extra: object) => ({ name, memoryMiB: 32, vcpus: 1, accel: 'tcg', kernel: { path: idleGuest().kernel }, ...extra });

it('explores', async () => {
  execSync(`mkfifo ${h.root.path('fifo')}`);
  mkdirSync(h.root.path('dir'));
  writeFileSync(h.root.path('img'), Buffer.alloc(1 << 20));
  const srv = createServer().listen(h.root.path('s.sock'));
  const cases: Array<[string, object]> = [
    ['zero', { disks: [{ path: '/dev/zero', target: 'vda' }] }],
    ['fifo', { disks: [{ path: h.root.path('fifo'), target: 'vda' }] }],
    ['dir', { disks: [{ path: h.root.path('dir'), target: 'vda' }] }],
    ['sock', { disks: [{ path: h.root.path('s.sock'), target: 'vda' }] }],
    ['none', { disks: [{ path: h.root.path('nope'), target: 'vda' }] }],
    ['kzero', { kernel: { path: '/dev/zero' } }],
    ['kfifo', { kernel: { path: h.root.path('fifo') } }],
    ['kdir', { kernel: { path: h.root.path('dir') } }],
    ['initrdzero', { kernel: { path: idleGuest().kernel, initrd: '/dev/zero' } }],
  ];
  for (const [name, extra] of cases) {
    const file = h.root.path(`${name}.json`);
    writeFileSync(file, JSON.stringify(def(name, extra)));
    const t0 = Date.now();
    const r = await Promise.race([h.run(['--definition', file, '--no-register'], name), new Promise((res) => setTimeout(() => res('TIMEOUT'), 15000))]);
    console.log(name, Date.now() - t0, JSON.stringify((r as any).reply ?? r).slice(0, 600));
  }
  srv.close();
}, 200_000);
