// virtqemud's idle warm shims (docs/decisions/0026-warm-shim-pool.md) are part of virtq's memory
// (issue 15: the pool's "cost is counted in the memory figures"). Which pids they are comes from
// virtqemud itself, serverInfo's details.shimPool; each is counted only while it is alive and no
// runtime state file names it (a shim that took a start since is counted with the VMs' shims).
//
//   node bench/compare-libvirt/pool-memory.mjs --check [--dist DIR]
// starts a virtqemud with --shim-pool 1 under a temporary root and checks the count against /proc.

/**
 * The idle pool shims' PSS (KiB) from a serverInfo result. `statePids`: shim pids the runtime
 * state files name; `pssOf(pid)`: KiB, NaN for a process that is gone.
 */
export function poolMemory(info, statePids, pssOf) {
  const pool = info?.details?.shimPool;
  if (pool === undefined) return { size: 0, pids: [], pss: 0 };
  const pids = [];
  let pss = 0;
  for (const pid of pool.idle) {
    if (statePids.has(pid)) continue;
    const kib = pssOf(pid);
    if (!Number.isFinite(kib)) continue;
    pids.push(pid);
    pss += kib;
  }
  return { size: pool.size, pids, pss };
}

/** Asks the virtqemud behind `adminSocket` for its pool and counts it (`RpcClient`, `clock` from dist/lib/protocol). */
export async function idlePoolShims({ RpcClient, clock, adminSocket, statePids, pssOf }) {
  const rpc = await RpcClient.connect(adminSocket, { clock, defaultTimeoutMs: 30_000 });
  try {
    return poolMemory(await rpc.call('admin', 'serverInfo', {}), statePids, pssOf);
  } finally {
    rpc.close();
  }
}

if (process.argv[1] !== undefined && import.meta.url.endsWith(process.argv[1].split('/').pop()) && process.argv.includes('--check')) {
  const { spawn } = await import('node:child_process');
  const { readFileSync } = await import('node:fs');
  const { join } = await import('node:path');
  const { REPO, cleanupRegistry, firstLine, options, smapsRollup, sleep, tmpRoot } = await import('../lib/common.mjs');
  const o = options();
  const dist = o.get('dist', join(REPO, 'dist'));
  const { RpcClient, systemClock } = await import(join(dist, 'lib', 'protocol', 'index.js'));
  const cleanup = cleanupRegistry();
  const root = cleanup.root(tmpRoot('vqpm-'));
  const d = cleanup.child(spawn(process.execPath, [join(dist, 'bin', 'virtqemud.js'), '--root', root, '--shim-pool', '1'], { stdio: ['ignore', 'pipe', 'inherit'] }));
  await firstLine(d);
  d.stdout.resume();
  const pssOf = (pid) => { try { return smapsRollup(pid).pss; } catch { return NaN; } };
  const adminSocket = join(root, 'run', 'virtqemud-admin.sock');
  let got = { pids: [] };
  for (const until = Date.now() + 60_000; got.pids.length === 0 && Date.now() < until; await sleep(100)) {
    got = await idlePoolShims({ RpcClient, clock: systemClock(), adminSocket, statePids: new Set(), pssOf });
  }
  let [pid] = got.pids;
  // Listed from its spawn on; measured once it has loaded and waits on stdin (read(2) is syscall 0).
  for (const until = Date.now() + 60_000; pid !== undefined && !readFileSync(`/proc/${pid}/syscall`, 'latin1').startsWith('0 ') && Date.now() < until;) await sleep(20);
  await sleep(500);
  got = await idlePoolShims({ RpcClient, clock: systemClock(), adminSocket, statePids: new Set(), pssOf });
  [pid] = got.pids;
  const cmd = pid === undefined ? [] : readFileSync(`/proc/${pid}/cmdline`, 'latin1').split('\0');
  const ppid = pid === undefined ? 0 : Number(readFileSync(`/proc/${pid}/stat`, 'latin1').split(') ')[1].split(' ')[1]);
  const checks = {
    'one idle shim listed': got.pids.length === 1 && got.size === 1,
    'it is a shim of this root waiting for a definition': cmd.some((a) => a.endsWith('virtq-shim.js')) && cmd.includes(root) && cmd.includes('-'),
    'a child of this virtqemud': ppid === d.pid,
    'its PSS counted (> 4 MiB)': got.pss > 4096,
    'a pid a state file names is not counted': poolMemory({ details: { shimPool: { size: 1, idle: got.pids } } }, new Set(got.pids), pssOf).pss === 0,
  };
  for (const [what, ok] of Object.entries(checks)) console.log(`${ok ? 'ok  ' : 'FAIL'} ${what}`);
  console.log(`idle pool shim ${pid}: ${(got.pss / 1024).toFixed(2)} MiB PSS`);
  d.kill('SIGTERM');
  process.exitCode = Object.values(checks).every(Boolean) ? 0 : 1;
}
