// Waits of the cluster chaos: a successor shim's reply after a shim was killed, and the end of a
// migration job on its source (a killed client does not stop the migration: the shim drives it).
import { spawn } from 'node:child_process';
import { delay, systemClock } from '../../protocol/index.js';
import { SHIM_BIN } from '../helpers/shim-harness.js';
import { within, type ClusterHost } from './cluster-world.js';

const clock = systemClock();

/** Runs `virtq-shim --attach NAME` under `root`; resolves with its reply (the shim stays, detached). */
export async function attach(root: string, name: string): Promise<string> {
  const proc = spawn(process.execPath, [SHIM_BIN, '--root', root, '--attach', name], { stdio: ['ignore', 'pipe', 'ignore'], detached: true });
  const reply = await within(new Promise<string>((resolve) => {
    let out = '';
    proc.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
      const nl = out.indexOf('\n');
      if (nl >= 0) resolve(out.slice(0, nl));
    });
    proc.once('exit', (code) => resolve(`exited ${code} without a reply`));
  }), 30_000);
  proc.stdout?.destroy();
  proc.unref();
  return reply ?? 'no reply within 30 s';
}

/** Until `h`'s virtqemud has no job for `name` (or does not answer: it was killed, the source shim drives on), at most 60 s. */
export async function jobOver(h: ClusterHost, name: string): Promise<void> {
  const end = clock.monotonic() + 60_000;
  while (clock.monotonic() < end) {
    const info = await within(h.api().then((api) => api.getJobInfo({ name })).catch(() => undefined), 5000);
    if (info === undefined || info.type === 'none') return;
    await delay(clock, 200);
  }
}
