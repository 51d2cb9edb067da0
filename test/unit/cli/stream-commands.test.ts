// `console` and `event` against fakes: when a console session ends (Ctrl-] on a TTY, stdin EOF
// and quiet output, --timeout, the VM going away) and how events print, driven by a fake clock.
import { describe, expect, it } from 'vitest';
import { EventQueue, VirtqError, type LifecycleEvent } from '../../../protocol/index.js';
import { FakeConsole, fake } from './fake-io.js';

const ev = (event: LifecycleEvent['event'], state: LifecycleEvent['state'], reason: string): LifecycleEvent => ({
  name: 'web1', uuid: '6f1c0c3e-8a5e-4a53-9d8e-0b1b4c1d2e3f', event, state, reason, timestamp: 1_700_000_000_000,
});

// Lets the CLI's promise chains run.
const settle = async (): Promise<void> => { for (let i = 0; i < 20; i++) await Promise.resolve(); };

describe('virtq console', () => {
  it('pipes stdin to the guest and the guest to stdout, and leaves once stdin ends and the guest is quiet', async () => {
    const con = new FakeConsole();
    const f = fake({ console: con });
    const done = f.run('console', 'web1');
    await settle();
    con.guest('GUEST-READY\n');
    f.stdin.send('\n');
    f.stdin.finish();
    await settle();
    con.guest('tg# ');
    await f.clock.advance(499);
    expect(con.ended).toBe(false);
    await f.clock.advance(1);
    expect(await done).toBe(0);
    expect(f.stdout.text).toBe('GUEST-READY\ntg# ');
    expect(con.typed).toEqual(['\n']);
    expect(con.ended).toBe(true);
    expect(f.stderr.text).toBe('');
  });

  it('keeps reading after stdin ends until --timeout', async () => {
    const con = new FakeConsole();
    const f = fake({ console: con });
    const done = f.run('console', 'web1', '--timeout', '3');
    await settle();
    f.stdin.finish();
    await f.clock.advance(2000);
    con.guest('late output');
    await f.clock.advance(1000);
    expect(await done).toBe(0);
    expect(f.stdout.text).toBe('late output');
  });

  it('leaves an interactive console on Ctrl-] in raw mode and restores the terminal', async () => {
    const con = new FakeConsole();
    const f = fake({ console: con, stdinTTY: true });
    const done = f.run('console', 'web1');
    await settle();
    f.stdin.send('ls\r');
    f.stdin.send(Buffer.from([0x61, 0x1d, 0x62]));
    expect(await done).toBe(0);
    expect(con.typed).toEqual(['ls\r', 'a']);
    expect(f.stdin.rawModes).toEqual([true, false]);
    expect(f.stderr.text).toContain("Connected to domain 'web1'");
    expect(f.stderr.text).toContain('Escape character is ^]');
  });

  it('ends with status 0 when the VM goes away, and 1 when the stream fails', async () => {
    const con = new FakeConsole();
    const f = fake({ console: con });
    const done = f.run('console', 'web1');
    await settle();
    con.error = new VirtqError('CONNECTION_CLOSED', 'connection closed');
    con.fromGuest.end();
    expect(await done).toBe(0);

    const bad = new FakeConsole();
    const g = fake({ console: bad });
    const failed = g.run('console', 'web1');
    await settle();
    bad.error = new VirtqError('INTERNAL', 'console broke');
    bad.fromGuest.end();
    expect(await failed).toBe(1);
    expect(g.stderr.text).toBe('virtq: INTERNAL: console broke\n');
  });
});

describe('virtq event', () => {
  it('prints the first event and exits without --loop', async () => {
    const events = new EventQueue<LifecycleEvent>(10);
    const f = fake({ events });
    events.push(ev('suspended', 'paused', 'user'));
    expect(await f.run('event', 'web1')).toBe(0);
    expect(f.calls).toEqual([{ proc: 'subscribeEvents', args: { name: 'web1' } }]);
    expect(f.stdout.text).toBe("event 'lifecycle' for domain 'web1': suspended (state paused, reason user)\n");
  });

  it('prints one JSON line per event with --loop --json until the timeout, then exits 0', async () => {
    const events = new EventQueue<LifecycleEvent>(10);
    const f = fake({ events });
    const done = f.run('event', '--loop', '--json', '--timeout', '10');
    await settle();
    events.push(ev('suspended', 'paused', 'user'));
    events.push(ev('resumed', 'running', 'unpaused'));
    await f.clock.advance(10_000);
    expect(await done).toBe(0);
    const lines = f.stdout.text.trimEnd().split('\n').map((l) => JSON.parse(l) as LifecycleEvent);
    expect(lines.map((l) => l.event)).toEqual(['suspended', 'resumed']);
    expect(f.calls[0]).toEqual({ proc: 'subscribeEvents', args: {} });
  });

  it('fails with CONNECTION_CLOSED when the connection ends before any event', async () => {
    const events = new EventQueue<LifecycleEvent>(10);
    events.end();
    const f = fake({ events });
    expect(await f.run('event', 'web1')).toBe(1);
    expect(f.stderr.text).toMatch(/^virtq: CONNECTION_CLOSED: /);
  });
});
