// The sides of bench/storage/run.mjs and how each is brought up: the floor (the tools, run as
// processes), the Node floor (node-min.mjs), virtstoraged (the built daemon run by its own
// shebang, driven through StorageClient), and libvirt (libvirtd's storage driver:
// python3-libvirt through lvs.py for latencies, virsh for the streams).
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { firstLine, sleep } from '../lib/common.mjs';

const HERE = fileURLToPath(new URL('.', import.meta.url));
/**
 * The environment of every process this benchmark starts: without the glibc malloc settings
 * run.sh gives this process (as virtstoraged's shebang gives the daemon), so that the tools,
 * virsh and libvirtd run as they would anywhere.
 */
export const childEnv = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('MALLOC_')));

/** Runs a command to its end; rejects on a non-zero exit with its stderr. */
export function run(cmd, args, opts = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'], env: childEnv, ...opts });
    let err = '';
    child.stderr.on('data', (d) => { err += d; });
    child.once('error', reject);
    child.once('close', (code) => (code === 0 ? resolve() : reject(new Error(`${cmd} ${args.join(' ')}: exit ${code}: ${err.slice(-2000)}`))));
  });
}
export const sh = (script) => run('sh', ['-c', script]);

/**
 * Starts virtstoraged from `dist` under `root` (as its binary, so with its shebang's
 * environment) and connects a StorageClient. Returns the client, the child and its stderr.
 */
export async function startStoraged(dist, root, cleanup) {
  const bin = join(dist, 'bin', 'virtstoraged.js');
  const child = cleanup.child(spawn(bin, ['--root', root], { stdio: ['ignore', 'pipe', 'pipe'], env: childEnv }));
  let stderr = '';
  child.stderr.on('data', (d) => { stderr += d; });
  const { line } = await firstLine(child);
  child.stdout.resume();
  const ready = JSON.parse(line);
  if (!ready.ok) throw new Error(`virtstoraged did not start: ${line} ${stderr}`);
  const { connectStorage } = await import(join(dist, 'lib', 'client', 'index.js'));
  const client = await connectStorage(`storage:///system?root=${root}`, { waitMs: 10_000 });
  return { client, child, stderr: () => stderr, shebang: readFileSync(bin, 'utf8').split('\n')[0] };
}

/**
 * A StorageClient in a process of its own (vqs.mjs), timing its calls as lvs.py times libvirt's:
 * `call(proc, args)` and `clone(args)` resolve to the milliseconds the client call took there.
 */
export async function startStoragedClient(dist, uri, cleanup) {
  const helper = startHelper(process.execPath, [join(HERE, 'vqs.mjs'), dist, uri], cleanup);
  const vq = {
    call: (proc, args = {}) => helper.call('call', { proc, args }).then((m) => m.ms),
    clone: (args) => helper.call('clone', { args }).then((m) => m.ms),
    close: () => helper.child.stdin.end(`${JSON.stringify({ op: 'quit' })}\n`),
  };
  await vq.call('listJobs');
  return vq;
}

/**
 * The Node floor (node-min.mjs): a framework-free Node server on `dir` and its client in a process
 * of its own; `call(op, args)` resolves to the milliseconds the call took there.
 */
export async function startNodeFloor(dir, cleanup) {
  const helper = startHelper(process.execPath, [join(HERE, 'node-min.mjs'), '--helper', dir], cleanup);
  const node = {
    call: (op, args = {}) => helper.call(op, args).then((m) => m.ms),
    close: () => helper.child.stdin.end(`${JSON.stringify({ op: 'quit' })}\n`),
  };
  await node.call('noop');
  return node;
}

/** A timing helper (lvs.py, vqs.mjs, node-min.mjs): one JSON command per line, one answer per line. */
function startHelper(cmd, args, cleanup) {
  const name = args[0].split('/').pop();
  const child = cleanup.child(spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'], env: childEnv }));
  let stderr = '';
  child.stderr.on('data', (d) => { stderr += d; });
  const lines = createInterface({ input: child.stdout });
  const waiting = [];
  lines.on('line', (l) => waiting.shift()?.(l));
  child.once('exit', (code) => { for (const w of waiting.splice(0)) w(JSON.stringify({ ok: false, error: `${name} exited (${code}): ${stderr.slice(-2000)}` })); });
  return {
    child,
    call(op, args = {}) {
      return new Promise((resolve, reject) => {
        waiting.push((l) => {
          const m = JSON.parse(l);
          if (m.ok) resolve(m); else reject(new Error(`${name} ${op}: ${m.error}`));
        });
        child.stdin.write(`${JSON.stringify({ op, ...args })}\n`);
      });
    },
  };
}

const alive = (pid) => existsSync(`/proc/${pid}`);

/**
 * Starts libvirtd as run.sh prepared it (VQSB_* in the environment), opens the helper and a
 * transient `dir` pool named `pool` at `path`. Returns the helper, virsh's argv prefix, the
 * version and stop() (TERM, then wait: the subreaper reaps it at once).
 */
export async function startLibvirt(pool, path, cleanup) {
  const { VQSB_LVDIR: lvdir, VQSB_URI: uri, VQSB_PY: py, VQSB_LIBVIRTD_CMD: cmd } = process.env;
  const argv = cmd.split(' ');
  const r = spawnSync(argv[0], argv.slice(1), { encoding: 'utf8', timeout: 60_000, env: childEnv });
  if (r.status !== 0) throw new Error(`${cmd}: exit ${r.status}: ${r.stderr}`);
  const pid = Number(readFileSync(join(lvdir, 'libvirtd.pid'), 'utf8').trim());
  const stop = async () => {
    if (!alive(pid)) return;
    try { process.kill(pid, 'SIGTERM'); } catch { return; }
    for (let i = 0; i < 100 && alive(pid); i += 1) await sleep(50);
    if (alive(pid)) try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
  };
  process.once('exit', () => { if (alive(pid)) try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ } });
  const lv = startHelper(py ?? '/usr/bin/python3', [join(HERE, 'lvs.py')], cleanup);
  const { version } = await lv.call('open');
  await lv.call('pool', { name: pool, path });
  const virsh = ['-q', '-c', uri];
  return { lv, virsh, version, pid, stop, pool };
}
