// Every test file's processes carry VIRTQ_TEST_FILE in their environment, set here before the file
// runs (a vitest setup file), with a value of its own. Once the file's own afterAll hooks have run
// (this one is registered first, so it runs last), any process still carrying it was left behind
// by that file: killed, and the file fails naming them. scripts/left-behind.mjs checks the whole
// run once more at its end.
import { randomUUID } from 'node:crypto';
import { afterAll } from 'vitest';
import { processesWithEnv, type EnvProcess } from './env-processes.js';

const VAR = 'VIRTQ_TEST_FILE';
const id = randomUUID();
process.env[VAR] = id;

/** How long a process killed by the file's last cleanup may take to end. */
const GRACE_MS = 10_000;

afterAll(async () => {
  let left: EnvProcess[] = processesWithEnv(VAR, id);
  for (const end = Date.now() + GRACE_MS; left.length > 0 && Date.now() < end; left = processesWithEnv(VAR, id)) {
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  if (left.length === 0) return;
  for (const p of left) {
    try { process.kill(p.pid, 'SIGKILL'); } catch { /* gone */ }
  }
  throw new Error(`this file left ${left.length} process(es) running ${GRACE_MS / 1000} s after its last test and hooks (now killed): ${left.map((p) => `pid ${p.pid}: ${p.args.join(' ')}`).join('; ')}`);
}, GRACE_MS + 5_000);
