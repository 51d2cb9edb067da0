// After the test suite: every process the suite started, directly or not, carries the run's
// VIRTQ_TEST_RUN value in its environment (scripts/test.sh exports it; spawns inherit it unless
// they replace the environment). Any such process still running once vitest has exited was left
// behind by a test: listed, killed, and the run fails. Usage: node scripts/left-behind.mjs RUN_ID
import { readdirSync, readFileSync } from 'node:fs';

const run = process.argv[2];
if (run === undefined || run === '') {
  console.error('usage: node scripts/left-behind.mjs RUN_ID');
  process.exit(2);
}
const entry = `VIRTQ_TEST_RUN=${run}\0`;
// This script and the shell running it carry the value too.
const ours = new Set([process.pid, process.ppid]);

function read(path) {
  try {
    return readFileSync(path, 'latin1');
  } catch {
    return undefined;
  }
}

/** Live processes of the run: a zombie (state Z) has ended, whatever its parent makes of it. */
function leftBehind() {
  const out = [];
  for (const name of readdirSync('/proc')) {
    const pid = Number(name);
    if (!Number.isInteger(pid) || ours.has(pid)) continue;
    const environ = read(`/proc/${pid}/environ`);
    if (environ === undefined || !(environ.startsWith(entry) || environ.includes(`\0${entry}`))) continue;
    const stat = read(`/proc/${pid}/stat`);
    const fields = stat?.slice(stat.lastIndexOf(')') + 2).split(' ') ?? [];
    if (fields[0] === undefined || fields[0] === 'Z' || fields[0] === 'X') continue;
    out.push({ pid, ppid: Number(fields[1]), args: (read(`/proc/${pid}/cmdline`) ?? '').split('\0').join(' ').trim() });
  }
  return out;
}

// Processes killed by a test's last cleanup may take a moment to end.
let left = leftBehind();
for (const end = Date.now() + 15_000; left.length > 0 && Date.now() < end; left = leftBehind()) {
  await new Promise((resolve) => setTimeout(resolve, 250));
}
if (left.length === 0) process.exit(0);
console.error(`left behind by the test suite (still running 15 s after it ended; now killed):`);
for (const p of left) {
  console.error(`  pid ${p.pid} (parent ${p.ppid}): ${p.args}`);
  try { process.kill(p.pid, 'SIGKILL'); } catch { /* gone */ }
}
process.exit(1);
