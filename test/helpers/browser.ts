// A real browser for tests: Debian's chromium driven by puppeteer-core (no browser download),
// headless, with the flags that keep it off the network this machine does not have, and a fresh
// profile under the test's root. close() ends it and every process of its group.
import { existsSync } from 'node:fs';
import puppeteer, { type Browser } from 'puppeteer-core';

/** Where Debian's package puts it (scripts/setup.sh installs it). */
export const CHROMIUM = process.env['VIRTQ_TEST_CHROMIUM'] || '/usr/bin/chromium';

const FLAGS = [
  '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage',
];

/** A launched browser. */
export interface TestBrowser {
  readonly browser: Browser;
  /** Closes it; kills its process group if it does not close within 5 s. */
  close(): Promise<void>;
}

/** Launches chromium with its profile in `userDataDir` (a fresh directory). */
export async function launchBrowser(userDataDir: string): Promise<TestBrowser> {
  if (!existsSync(CHROMIUM)) throw new Error(`no browser at ${CHROMIUM}: install Debian's chromium (bash scripts/setup.sh)`);
  const browser = await puppeteer.launch({
    executablePath: CHROMIUM, headless: true, userDataDir, args: FLAGS,
    defaultViewport: { width: 1280, height: 900 },
    // The test's own handlers clean up; chromium must not outlive a killed test run either.
    handleSIGINT: true, handleSIGTERM: true, handleSIGHUP: true,
  });
  const pid = browser.process()?.pid;
  return {
    browser,
    close: async () => {
      const closed = browser.close().then(() => true, () => false);
      const timedOut = new Promise<boolean>((resolve) => setTimeout(() => resolve(false), 5000).unref());
      await Promise.race([closed, timedOut]);
      if (pid === undefined) return;
      // puppeteer starts chromium as the leader of its own process group: wait for all of it (renderers, zygote) to go.
      for (let i = 0; i < 100 && groupAlive(pid); i++) await new Promise((r) => setTimeout(r, 50));
      if (groupAlive(pid)) process.kill(-pid, 'SIGKILL');
    },
  };
}

function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch {
    return false;
  }
}
