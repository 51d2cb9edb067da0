/// <reference lib="dom" />
// virtqemud's web host view in a real browser (Debian's chromium driven by puppeteer-core): a VM
// started from the CLI shows up on the page within a second; the destroy button stops it (the page
// and `virtq domstate` agree); keystrokes typed into the browser's console reach the guest's shell
// and its answer shows in the page's terminal; suspend, resume and start work too; and a page
// without the write token has no working button (forced clicks and console sockets are refused
// with 403). Set UPDATE_WEB_SCREENSHOT=1 to rewrite docs/web-view.png from this run.
import { copyFileSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import type { Page } from 'puppeteer-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LifecycleEvent } from '../../protocol/index.js';
import { DaemonHarness } from '../helpers/daemon-harness.js';
import { launchBrowser, type TestBrowser } from '../helpers/browser.js';
import { idleGuest, testAccel, testGuest } from '../helpers/test-guest.js';
import { tmpRoot } from '../helpers/tmp-root.js';
import { virtqOk } from './virtq-cli.js';

const TOKEN = 'web-view-test-token-0123456789';
const SCREENSHOT = new URL('../../docs/web-view.png', import.meta.url).pathname;

describe('the web host view in a browser', () => {
  let h: DaemonHarness;
  let b: TestBrowser;
  let base: string;
  let uri: string;
  const run = (...args: string[]) => virtqOk(['-c', uri, ...args], { cwd: h.root.dir });
  const row = (name: string, state?: string) => `tr[data-name="${name}"]${state === undefined ? '' : `[data-state="${state}"]`}`;

  beforeAll(async () => {
    h = new DaemonHarness(tmpRoot('vqweb-'));
    writeFileSync(h.root.path('token'), `${TOKEN}\n`, { mode: 0o600 });
    mkdirSync(h.root.path('vms'));
    symlinkSync(testGuest().kernel, h.root.path('vmlinuz'));
    symlinkSync(testGuest().initrd, h.root.path('initrd.gz'));
    writeFileSync(h.root.path('vms', 'web1.json'), JSON.stringify({
      name: 'web1', memoryMiB: 128, vcpus: 1, accel: testAccel(),
      kernel: { path: '../vmlinuz', initrd: '../initrd.gz', cmdline: 'console=ttyS0 quiet panic=-1' },
    }));
    writeFileSync(h.root.path('vms', 'idle1.json'), JSON.stringify({ name: 'idle1', memoryMiB: 32, vcpus: 1, accel: 'tcg', kernel: { path: idleGuest().kernel } }));
    writeFileSync(h.root.path('vms', 'db1.json'), JSON.stringify({ name: 'db1', memoryMiB: 64, vcpus: 1, accel: 'tcg', kernel: { path: idleGuest().kernel } }));
    const daemon = await h.startDaemon(['--http', '127.0.0.1:0', '--http-write-token', h.root.path('token'), '--metrics-refresh-ms', '250']);
    expect(daemon.reply.ok).toBe(true);
    base = `http://127.0.0.1:${daemon.reply.httpPort}`;
    uri = `qemu:///system?root=${h.root.dir}`;
    b = await launchBrowser(h.root.path('chromium-profile'));
  });
  afterAll(async () => {
    await b?.close();
    await h.cleanup();
  });

  async function openPage(unlock: boolean): Promise<Page> {
    const context = await b.browser.createBrowserContext();
    const page = await context.newPage();
    await page.goto(base);
    await page.waitForFunction(() => document.getElementById('live')?.textContent === 'live', { timeout: 5000 });
    if (unlock) {
      await page.type('#token', TOKEN);
      await page.click('#unlock button[type="submit"]');
      await page.waitForFunction(() => document.getElementById('write-state')?.textContent === 'writes unlocked', { timeout: 5000 });
    }
    return page;
  }

  const terminalText = (page: Page) => page.$eval('#terminal .xterm-rows', (el) => el.textContent ?? '');
  const waitForTerminal = (page: Page, text: string, timeout = 30_000) =>
    page.waitForFunction((t) => (document.querySelector('#terminal .xterm-rows')?.textContent ?? '').includes(t), { timeout, polling: 50 }, text);

  it('shows a VM started from the CLI within a second, types into its console, and destroys it (and more) with buttons', async () => {
    const page = await openPage(true);
    await run('define', 'vms/db1.json');
    await page.waitForSelector(row('db1', 'shutoff'), { timeout: 1000 });
    await run('define', 'vms/web1.json');
    // When the row first shows the VM running, by the browser's clock (the same host's).
    await page.evaluate((sel) => {
      const w = window as unknown as { seenRunning?: number };
      new MutationObserver((_, obs) => {
        if (document.querySelector(sel) !== null) { w.seenRunning = Date.now(); obs.disconnect(); }
      }).observe(document.body, { subtree: true, childList: true, attributes: true });
    }, row('web1', 'running'));
    const { rpc } = await h.client(true);
    await rpc.call('virtq', 'subscribeEvents', { name: 'web1' });
    await run('start', 'web1');
    const started = Date.now();
    await page.waitForSelector(row('web1', 'running'), { timeout: 1000 });
    const seen = await page.evaluate(() => (window as unknown as { seenRunning?: number }).seenRunning ?? Date.now());
    let event: LifecycleEvent | undefined;
    for await (const e of rpc.events()) if ((event = e.body as LifecycleEvent).event === 'started') break;
    console.log(`web view: web1 shown running ${seen - (event?.timestamp ?? NaN)} ms after virtqemud's started event, ${seen - started} ms after \`virtq start\` returned`);
    expect(seen - started).toBeLessThan(1000);
    await run('create', 'vms/idle1.json');
    await page.waitForSelector(row('idle1', 'running'), { timeout: 1000 });

    // The console: the guest's boot (history first), then a command typed into the browser.
    await page.click(`${row('web1')} button[data-action="console"]`);
    await page.waitForFunction(() => document.getElementById('console-state')?.textContent === 'connected', { timeout: 5000 });
    await waitForTerminal(page, 'GUEST-READY');
    await page.click('#terminal');
    await page.keyboard.press('Enter');
    await waitForTerminal(page, 'tg#', 10_000);
    await page.keyboard.type('echo $((6*7))-typed-in-the-browser\n');
    await waitForTerminal(page, '42-typed-in-the-browser', 10_000);
    expect(await terminalText(page)).toContain('$((6*7))-typed-in-the-browser');

    // Sparklines have points once the shims' metrics have been fetched a few times.
    await page.waitForFunction((sel) => (document.querySelector(`${sel} td.mem .value`)?.textContent ?? '').endsWith('MiB'), { timeout: 5000 }, row('web1'));
    await page.waitForFunction((sel) => (document.querySelector(`${sel} td.cpu polyline`)?.getAttribute('points') ?? '').split(' ').length >= 4, { timeout: 5000 }, row('web1'));
    const shot = h.root.path('web-view.png');
    await page.screenshot({ path: shot, fullPage: true });
    expect(readFileSync(shot).subarray(1, 4).toString()).toBe('PNG');
    if (process.env['UPDATE_WEB_SCREENSHOT'] === '1') copyFileSync(shot, SCREENSHOT);

    await page.click(`${row('web1')} button[data-action="destroy"]`);
    await page.waitForSelector(row('web1', 'shutoff'), { timeout: 5000 });
    expect(await page.$eval(`${row('web1')} td.state`, (el) => el.textContent)).toBe('shut off (destroyed)');
    expect(await run('domstate', 'web1', '--reason')).toBe('shutoff (destroyed)\n');

    // The other buttons, on the idle guests.
    await page.click(`${row('idle1')} button[data-action="suspend"]`);
    await page.waitForSelector(row('idle1', 'paused'), { timeout: 5000 });
    expect(await run('domstate', 'idle1', '--reason')).toBe('paused (user)\n');
    await page.click(`${row('idle1')} button[data-action="resume"]`);
    await page.waitForSelector(row('idle1', 'running'), { timeout: 5000 });
    await page.click(`${row('db1')} button[data-action="start"]`);
    await page.waitForSelector(row('db1', 'running'), { timeout: 10_000 });
    expect(await run('domstate', 'db1')).toBe('running\n');
    await page.close();
  });

  it('gives a page without the token no working button: clicks and consoles are refused', async () => {
    const page = await openPage(false);
    await page.waitForSelector(row('idle1', 'running'), { timeout: 5000 });
    expect(await page.$eval('#unlock', (el) => (el as HTMLElement).hidden)).toBe(false);
    const buttons = await page.$$eval(`${row('idle1')} button`, (els) => els.map((el) => [el.dataset['action'], (el as HTMLButtonElement).disabled]));
    expect(buttons).toEqual(['start', 'shutdown', 'destroy', 'suspend', 'resume', 'console'].map((a) => [a, true]));

    // Enabled by hand (and clicked at once: the next update disables it again), the button asks the server, which refuses.
    await page.$eval(`${row('idle1')} button[data-action="destroy"]`, (el) => { (el as HTMLButtonElement).disabled = false; (el as HTMLButtonElement).click(); });
    await page.waitForFunction(() => (document.getElementById('message')?.textContent ?? '').includes('PERMISSION_DENIED'), { timeout: 5000 });
    const status = await page.evaluate(async () => (await fetch('/api/domains/idle1/suspend', { method: 'POST' })).status);
    expect(status).toBe(403);
    // A console socket is refused before it opens.
    const closed = await page.evaluate(() => new Promise<{ opened: boolean; code: number }>((resolve) => {
      const ws = new WebSocket(`ws://${location.host}/console/idle1`);
      let opened = false;
      ws.onopen = () => { opened = true; };
      ws.onclose = (e) => resolve({ opened, code: e.code });
    }));
    expect(closed).toEqual({ opened: false, code: 1006 });
    expect(await run('domstate', 'idle1')).toBe('running\n');
    await page.close();
  });
});
