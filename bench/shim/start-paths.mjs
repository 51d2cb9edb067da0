// bench/shim `--only paths` (issue #15): the ways a VM can start, interleaved round by round in
// one run against raw QEMU with the shim's argv family (-S + QMP cont):
//   rawS      raw QEMU, this process as its QMP peer: spawn → `cont` returned
//   shim      `virtq-shim --no-register --definition F` (cold): spawn → ready line
//   warm      a shim started ahead with `--definition -` (loaded, blocked on stdin): definition
//             written → ready line (what virtqemud's pool does)
//   vqdCold   `create` through virtqemud --shim-pool 0: call → reply (the VM is running)
//   vqdPool   `create` through virtqemud --shim-pool 1: call → reply
//   embedCold `create` through the client library in embed mode (qemu:///embed), no pool: call → reply
//   embedPool the same with `shimPool: 1` (the library keeps a warm shim): call → reply
//   nodeE0    `node -e 0` with the shim's flags, and `virtq-shim --help` (bootstrap + bundle
//             evaluation + exit): the phases before the shim's own code runs
// Each VM is destroyed before the next round; a pooled virtqemud refills before its next turn.
import { spawn, spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { cpuMs, exitOf, firstLine, idleDefinition, now, sleep, summarize } from '../lib/common.mjs';

/** Idle shims under `root`: a shim process with `--definition -` that no state file names yet. */
function idleShimPids(root) {
  const owned = new Set();
  try {
    for (const f of readdirSync(join(root, 'run', 'shims'))) {
      if (!f.endsWith('.json')) continue;
      try { owned.add(JSON.parse(readFileSync(join(root, 'run', 'shims', f), 'utf8')).shimPid); } catch { /* being written */ }
    }
  } catch { /* none yet */ }
  const pids = [];
  for (const e of readdirSync('/proc')) {
    const pid = Number(e);
    if (!Number.isInteger(pid)) continue;
    let cmd;
    try { cmd = readFileSync(`/proc/${pid}/cmdline`, 'latin1').split('\0'); } catch { continue; }
    if (cmd.some((a) => a.endsWith('virtq-shim.js')) && cmd.includes(root) && cmd.includes('-') && !owned.has(pid)) pids.push(pid);
  }
  return pids;
}

/**
 * Waits until `pid` is blocked reading its stdin (fd 0): its code is loaded and it waits for its
 * definition. /proc/PID/syscall reads "0 0x0 ..." then (read(2) is syscall 0 on x86_64). A CPU
 * reading that stands still is not enough under load: a runnable process the scheduler has not
 * run yet uses no CPU either.
 */
async function settled(pid, deadline = now() + 30_000) {
  for (;;) {
    let sc = '';
    try { sc = readFileSync(`/proc/${pid}/syscall`, 'latin1'); } catch { return; }
    if (sc.startsWith('0 0x0 ') || now() > deadline) return;
    await sleep(10);
  }
}

/** Waits until `pid` has exited (gone, or a zombie nobody reaped yet: it uses no CPU any more). */
async function exited(pid, deadline = now() + 15_000) {
  while (now() < deadline) {
    let stat;
    try { stat = readFileSync(`/proc/${pid}/stat`, 'latin1'); } catch { return; }
    if (/\) [ZX] /.test(stat)) return;
    await sleep(5);
  }
}

/** The shim pid the state file of VM `name` under `root` names (undefined once it is gone). */
function vmShimPid(root, name) {
  try { return JSON.parse(readFileSync(join(root, 'run', 'shims', `${name}.json`), 'utf8')).shimPid; } catch { return undefined; }
}

/** `ctx`: { R, SHIM_BIN, DIST, SHEBANG, cleanup, rawS, viaShim, shimArgv, RpcClient, clock, log, rounds, writeDef } */
export async function startPathsSection(ctx) {
  const { R, SHIM_BIN, DIST, cleanup, rawS, viaShim, shimArgv, RpcClient, clock, log, rounds } = ctx;
  const flags = ctx.SHEBANG.replace(/^#!\/usr\/bin\/env -S /, '').split(' ');
  const env = { ...process.env, ...Object.fromEntries(flags.filter((f) => /^[A-Z_]+=/.test(f)).map((f) => f.split('='))) };
  const nodeFlags = flags.filter((f) => f.startsWith('--'));
  // A template for raw QEMU's argv, from one shim's VM.
  await viaShim('paths-first', 'tcg');
  const tmplShim = await ctx.startShim('paths-tmpl');
  const tmpl = shimArgv(R, 'paths-tmpl');
  await ctx.killShim(tmplShim);

  const daemons = {};
  for (const [kind, pool] of [['vqdCold', '0'], ['vqdPool', '1']]) {
    const root = cleanup.root(join(R, kind));
    const d = cleanup.child(spawn(process.execPath, [join(DIST, 'bin', 'virtqemud.js'), '--root', root, '--shim-pool', pool], { stdio: ['ignore', 'pipe', 'inherit'] }));
    await firstLine(d);
    d.stdout.resume();
    const rpc = await RpcClient.connect(join(root, 'run', 'virtqemud.sock'), { clock, defaultTimeoutMs: 60_000 });
    daemons[kind] = { root, d, rpc };
  }
  // Embed mode: this process is the application; shims run through their shebang as virtqemud's do.
  const { connect } = await import(join(DIST, 'lib', 'client', 'index.js'));
  const embeds = {};
  for (const [kind, shimPool] of [['embedCold', 0], ['embedPool', 1]]) {
    const root = cleanup.root(join(R, kind));
    embeds[kind] = { root, conn: await connect(`qemu:///embed?root=${root}`, { shimCommand: [SHIM_BIN], timeoutMs: 60_000, shimPool }) };
  }
  const viaEmbed = async (kind, name) => {
    const { root, conn } = embeds[kind];
    if (kind === 'embedPool') {
      let pids = idleShimPids(root);
      for (const until = now() + 20_000; pids.length === 0 && now() < until; pids = idleShimPids(root)) await sleep(20);
      for (const p of pids) await settled(p);
    }
    const t0 = now();
    const r = await conn.virtq.create({ definition: idleDefinition(name) });
    const runMs = now() - t0;
    if (r.state !== 'running') throw new Error(`${kind} ${name}: ${JSON.stringify(r)}`);
    const shimPid = vmShimPid(root, name);
    await conn.virtq.destroy({ name });
    // Its shim exits a moment after the reply: not the next kind's start to share the CPUs with.
    if (shimPid !== undefined) await exited(shimPid);
    return { runMs };
  };
  const viaDaemon = async (kind, name) => {
    const { root, rpc } = daemons[kind];
    if (kind === 'vqdPool') {
      // Its pool refilled after the last start: wait for that shim to be loaded.
      let pids = idleShimPids(root);
      for (const until = now() + 20_000; pids.length === 0 && now() < until; pids = idleShimPids(root)) await sleep(20);
      for (const p of pids) await settled(p);
    }
    const t0 = now();
    const r = await rpc.call('virtq', 'create', { definition: idleDefinition(name) });
    const runMs = now() - t0;
    if (r.state !== 'running') throw new Error(`${kind} ${name}: ${JSON.stringify(r)}`);
    const shimPid = vmShimPid(root, name);
    await rpc.call('virtq', 'destroy', { name });
    if (shimPid !== undefined) await exited(shimPid);
    return { runMs };
  };
  const warm = async (name) => {
    const child = cleanup.child(spawn(SHIM_BIN, ['--root', R, '--no-register', '--definition', '-'], { stdio: ['pipe', 'pipe', 'inherit'], env: process.env }));
    await sleep(100);
    await settled(child.pid);
    const cpuIdle = cpuMs(child.pid);
    const t0 = now();
    child.stdin.end(JSON.stringify(idleDefinition(name)));
    const { line, at } = await firstLine(child);
    const reply = JSON.parse(line);
    if (!reply.ok) throw new Error(`warm ${name}: ${line}`);
    const cpuAfter = cpuMs(child.pid);
    child.stdout.resume();
    const rpc = await RpcClient.connect(reply.socket, { clock, defaultTimeoutMs: 30_000 });
    await rpc.call('virtq', 'destroy', { name });
    rpc.close();
    await exitOf(child);
    return { runMs: at - t0, cpuLoad: cpuIdle, cpuStart: cpuAfter - cpuIdle };
  };
  const whole = (cmd, args, e) => {
    const t0 = now();
    const r = spawnSync(cmd, args, { stdio: 'ignore', env: e });
    if (r.status === null) throw new Error(`${cmd} ${args.join(' ')}: ${r.signal}`);
    return { runMs: now() - t0 };
  };
  const kinds = {
    rawS: (n) => rawS(tmpl, n),
    shim: async (n) => { const s = await viaShim(n, 'tcg'); return { runMs: s.readyMs, cpu: s.cpuAtReady }; },
    warm,
    vqdCold: (n) => viaDaemon('vqdCold', n),
    vqdPool: (n) => viaDaemon('vqdPool', n),
    embedCold: (n) => viaEmbed('embedCold', n),
    embedPool: (n) => viaEmbed('embedPool', n),
    nodeE0: () => whole(process.execPath, [...nodeFlags, '-e', '0'], env),
    nodeE0NoFlags: () => whole(process.execPath, ['-e', '0'], process.env),
    shimHelp: () => whole(SHIM_BIN, ['--help'], process.env),
  };
  const names = Object.keys(kinds);
  const rows = Object.fromEntries(names.map((k) => [k, []]));
  log(`start paths: ${rounds} rounds of ${names.join(', ')}`);
  for (let r = -1; r < rounds; r++) {
    for (let k = 0; k < names.length; k++) {
      const kind = names[(k + r + names.length) % names.length];
      // Every pool's refill loaded first (session 20): a pool shim loading (~270 ms of CPU) beside any kind's start,
      // and the last kind's shim exiting (waited for above), had made the kinds after them slower than the rest.
      for (const root of [daemons.vqdPool.root, embeds.embedPool.root]) for (const p of idleShimPids(root)) await settled(p);
      const res = await kinds[kind](`p${r + 1}-${kind}`);
      if (r >= 0) rows[kind].push(res);
      await sleep(30);
    }
  }
  const idle = idleShimPids(daemons.vqdPool.root);
  for (const p of idle) await settled(p);
  await sleep(3000);
  const poolPss = idle.map((p) => ctx.smapsRollup(p));
  for (const { rpc, d } of Object.values(daemons)) { rpc.close(); d.kill('SIGTERM'); await exitOf(d); }
  for (const { conn } of Object.values(embeds)) conn.close();
  const col = (kind, key = 'runMs') => summarize(rows[kind].map((x) => x[key]).filter((v) => v !== undefined));
  const paired = (kind) => summarize(rows[kind].map((x, i) => x.runMs - rows.rawS[i].runMs));
  return {
    rounds,
    run: Object.fromEntries(names.map((k) => [k, col(k)])),
    addedVsRawS: Object.fromEntries(['shim', 'warm', 'vqdCold', 'vqdPool', 'embedCold', 'embedPool'].map((k) => [k, paired(k)])),
    shimCpu: col('shim', 'cpu'), warmCpuLoad: col('warm', 'cpuLoad'), warmCpuStart: col('warm', 'cpuStart'),
    idlePoolShim: poolPss.map((m) => ({ pssMiB: m.pss / 1024, rssMiB: m.rss / 1024 })),
  };
}
