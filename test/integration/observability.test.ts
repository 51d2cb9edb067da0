// Metrics, logs and the admin API against real shims and QEMU: one scrape covers every VM with
// the right labels and parses as Prometheus exposition, values move, a frozen shim cannot stall
// a scrape, log filters change at run time, and the admin limits and disconnect take effect.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import parse from 'parse-prometheus-text-format';
import { RpcClient, adminProgram, delay, shimSockets, typedClient } from '../../protocol/index.js';
import { DaemonHarness } from '../helpers/daemon-harness.js';
import { guestDefinition } from '../helpers/shim-harness.js';
import { idleGuest } from '../helpers/test-guest.js';
import { tmpRoot } from '../helpers/tmp-root.js';

const idleDef = (name: string) => ({ name, memoryMiB: 32, vcpus: 1, accel: 'tcg' as const, kernel: { path: idleGuest().kernel } });

async function scrape(port: number, path = '/metrics'): Promise<{ text: string; ms: number }> {
  const t0 = performance.now();
  const res = await fetch(`http://127.0.0.1:${port}${path}`);
  const text = await res.text();
  expect(res.status, text).toBe(200);
  return { text, ms: performance.now() - t0 };
}

function sample(text: string, name: string, labels: Record<string, string>): number | undefined {
  const family = parse(text).find((f) => f.name === name);
  const m = family?.metrics.find((x) => Object.entries(labels).every(([k, v]) => x.labels?.[k] === v));
  return m?.value === undefined ? undefined : Number(m.value);
}

describe('observability', () => {
  let h: DaemonHarness;
  let port: number;
  beforeEach(async () => {
    h = new DaemonHarness(tmpRoot());
    const d = await h.startDaemon(['--http', '127.0.0.1:0', '--metrics-refresh-ms', '200']);
    port = d.reply.httpPort as number;
  });
  afterEach(async () => { await h.cleanup(); });

  it('scrapes 10 running VMs in one valid exposition whose values move', async () => {
    const { api } = await h.client();
    const img = h.root.path('data.img');
    execFileSync('qemu-img', ['create', '-q', '-f', 'raw', img, '16M']);
    await Promise.all(Array.from({ length: 9 }, (_, i) => api.create({ definition: idleDef(`idle${i}`) })));
    await api.create({ definition: guestDefinition('busy1', { disks: [{ path: img, target: 'vda', format: 'raw' }] }) });
    const stream = await (await h.client()).rpc.openStream('virtq', 'openConsole', { name: 'busy1' });
    let out = '';
    for await (const chunk of stream) { out += Buffer.from(chunk).toString(); if (out.includes('GUEST-READY')) break; }

    // The shims' metrics are fetched in the background; wait for a refresh that has all ten.
    let first = await scrape(port);
    for (let i = 0; i < 40 && (first.text.match(/^virtq_shim_up\{[^}]*\} 1$/gm) ?? []).length < 10; i++) {
      await delay(h.clock, 100);
      first = await scrape(port);
    }
    const families = parse(first.text);
    expect(new Set(families.map((f) => f.name)).size).toBe(families.length);
    const names = ['busy1', ...Array.from({ length: 9 }, (_, i) => `idle${i}`)];
    const rows = (await api.listDomains({})).domains;
    for (const name of names) {
      const uuid = rows.find((r) => r.name === name)?.uuid as string;
      expect(sample(first.text, 'virtq_shim_up', { domain: name, uuid })).toBe(1);
      expect(sample(first.text, 'virtq_domain_state', { domain: name, uuid, state: 'running' })).toBe(1);
      expect(sample(first.text, 'virtq_domain_vcpus', { domain: name, uuid })).toBe(1);
    }
    expect(sample(first.text, 'virtq_daemon_shims_registered', {})).toBe(10);
    expect(sample(first.text, 'virtq_daemon_domains', { state: 'running' })).toBe(10);
    const cpu1 = sample(first.text, 'virtq_domain_cpu_seconds_total', { domain: 'busy1' }) as number;
    expect(cpu1).toBeGreaterThan(0);

    // Guest I/O: read the disk from the guest's shell.
    const shell = await (await h.client()).rpc.openStream('virtq', 'openConsole', { name: 'busy1' });
    shell.write('\n');
    shell.write('dd if=/dev/vda of=/dev/null bs=64k count=64 && echo IO-DONE\n');
    out = '';
    for await (const chunk of shell) { out += Buffer.from(chunk).toString(); if (/IO-DONE\s*\r?\n/.test(out.split('dd if')[1] ?? '')) break; }
    await (await h.connect(shimSockets(h.layout, 'busy1').admin)).rpc.call('admin', 'serverInfo', {});
    // Block counters are refreshed in the background every 5 s: the scrape never waits for QEMU.
    let read = 0;
    for (let i = 0; i < 40 && read < 4 * 1024 * 1024; i++) {
      await delay(h.clock, 250);
      read = sample((await scrape(port)).text, 'virtq_domain_block_read_bytes_total', { domain: 'busy1', disk: 'vda' }) ?? 0;
    }
    expect(read).toBeGreaterThanOrEqual(4 * 1024 * 1024);
    expect(sample((await scrape(port)).text, 'virtq_domain_cpu_seconds_total', { domain: 'busy1' })).toBeGreaterThan(cpu1);
    expect(sample((await scrape(port)).text, 'virtq_rpc_requests_total', { procedure: 'virtq.create', code: 'OK' })).toBe(10);

    const sd = await (await fetch(`http://127.0.0.1:${port}/sd`)).json() as Array<{ targets: string[]; labels: Record<string, string> }>;
    expect(sd.map((t) => t.labels['domain']).sort()).toEqual([...names].sort());
    const one = await scrape(port, sd.find((t) => t.labels['domain'] === 'idle3')?.labels['__metrics_path__']);
    expect(sample(one.text, 'virtq_domain_state', { domain: 'idle3', state: 'running' })).toBe(1);
    expect(one.text).not.toContain('domain="idle4"');
  });

  it('finishes a scrape on time with a frozen shim reported down and the rest present', async () => {
    const { api } = await h.client();
    const frozen = await api.create({ definition: idleDef('frozen1') });
    await api.create({ definition: idleDef('fine1') });
    process.kill(frozen.shimPid as number, 'SIGSTOP');
    try {
      // Every scrape returns at once; within a refresh plus the per-shim deadline the frozen shim shows down.
      let { text, ms } = await scrape(port);
      for (let i = 0; i < 30 && sample(text, 'virtq_shim_up', { domain: 'frozen1' }) !== 0; i++) {
        expect(ms).toBeLessThan(1000);
        await delay(h.clock, 100);
        ({ text, ms } = await scrape(port));
      }
      expect(ms).toBeLessThan(1000);
      expect(sample(text, 'virtq_shim_up', { domain: 'frozen1' })).toBe(0);
      expect(sample(text, 'virtq_shim_up', { domain: 'fine1' })).toBe(1);
      expect(sample(text, 'virtq_domain_state', { domain: 'fine1', state: 'running' })).toBe(1);
    } finally {
      process.kill(frozen.shimPid as number, 'SIGCONT');
    }
  });

  it('changes what a shim logs when its log filters change at run time', async () => {
    const { api } = await h.client();
    await api.create({ definition: idleDef('logs1') });
    const admin = typedClient(adminProgram, (await h.connect(shimSockets(h.layout, 'logs1').admin)).rpc);
    const logFile = h.root.path('log', 'logs1.log');
    await api.suspend({ name: 'logs1' });
    await api.resume({ name: 'logs1' });
    expect(readFileSync(logFile, 'utf8')).not.toContain('"qmp command"');
    // Host-wide, through virtqemud's fan-out to every shim.
    const daemonAdmin = typedClient(adminProgram, (await h.connect(h.sockets.admin)).rpc);
    await expect(daemonAdmin.callShims({ procedure: 'setLogFilters', args: { filters: 'info debug:qemu.qmp' } }))
      .resolves.toEqual({ results: [{ name: 'logs1', ok: true, result: {} }] });
    expect(await admin.getLogFilters({})).toEqual({ filters: 'info debug:qemu.qmp' });
    await api.suspend({ name: 'logs1' });
    for (let i = 0; i < 40 && !readFileSync(logFile, 'utf8').includes('"qmp command"'); i++) await delay(h.clock, 50);
    expect(readFileSync(logFile, 'utf8')).toContain('"qmp command"');
    await expect(admin.setLogFilters({ filters: 'loud:x' })).rejects.toMatchObject({ code: 'INVALID_ARG' });
  });

  it('disconnects exactly the named client and enforces new limits', async () => {
    const admin = typedClient(adminProgram, (await h.connect(h.sockets.admin)).rpc);
    const a = await h.client();
    const b = await h.client();
    await a.api.listDomains({});
    const clients = (await admin.listClients({})).clients.filter((c) => c.socket === 'rw');
    expect(clients).toHaveLength(2);
    const target = clients.find((c) => c.calls === 1);
    await admin.disconnectClient({ id: target?.id as number });
    await expect(a.rpc.closed).resolves.toMatchObject({ code: 'CONNECTION_CLOSED' });
    await expect(b.api.listDomains({})).resolves.toEqual({ domains: [] });
    await expect(admin.setLimits({ maxClients: 1 })).resolves.toMatchObject({ maxClients: 1 });
    const extra = await RpcClient.connect(h.sockets.rw, { clock: h.clock });
    await expect(extra.call('virtq', 'listDomains', {})).rejects.toMatchObject({ code: 'TOO_MANY_CLIENTS' });
    expect((await admin.serverInfo({})).limits.maxClients).toBe(1);
  });
});
