// Instructions (valgrind callgrind) or a --cpu-prof / perf profile of one virtqemud restart up to its first
// complete listing of N VMs (issue 15 target 4, session 12): load-independent where wall and CPU are not.
//   [STOP_SHIMS=1] [VG=OUT | PERF=OUT] node bench/virtqemud/restart-instr.mjs DIST ROOT N PROFDIR|-
// STRACE=OUT runs the installed way (the sh launcher) under `strace -f -tt -T -o OUT` instead.
// STOP_SHIMS=1 freezes the shims (SIGSTOP; SIGCONT at exit) so no re-registration is counted; VG= writes
// a callgrind dump at the listing (`grep ^summary OUT.1`); PROFDIR writes a --cpu-prof profile.
// (DIST is a build's dist/; ROOT made by restart-cpu.mjs; extra node flags may follow PROFDIR)
import { spawn } from 'node:child_process';
import { readFileSync, readdirSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
const [dist, root, nStr, profDir, ...flags] = process.argv.slice(2);
const N = Number(nStr);
const { RpcClient, systemClock, daemonSockets, rootLayout } = await import(join(dist, 'lib', 'protocol', 'index.js'));
const clock = systemClock();
const env = { ...process.env }; delete env.NODE_EXTRA_CA_CERTS;
const cpuMs = (pid) => readdirSync(`/proc/${pid}/task`).reduce((s, t) => { try { return s + Number(readFileSync(`/proc/${pid}/task/${t}/schedstat`, 'utf8').split(' ')[0]) / 1e6; } catch { return s; } }, 0);
const sock = daemonSockets(rootLayout(root)).rw;
const bin = join(dist, 'bin');
const blob = readdirSync(bin).find((f) => f.startsWith('virtqemud-') && f.endsWith('.blob'));
if (profDir !== '-') mkdirSync(profDir, { recursive: true });
const prof = profDir === '-' ? [] : ['--cpu-prof', '--cpu-prof-dir', profDir, '--cpu-prof-interval', '100'];
const shimPids = process.env.STOP_SHIMS ? readdirSync(join(root, 'run', 'shims')).filter((f) => f.endsWith('.json')).map((f) => JSON.parse(readFileSync(join(root, 'run', 'shims', f), 'utf8')).shimPid) : [];
for (const p of shimPids) process.kill(p, 'SIGSTOP');
const t0 = performance.now();
const perfOut = process.env.PERF; const vg = process.env.VG; const st = process.env.STRACE;
const child = vg ? spawn('valgrind', ['--tool=callgrind', '--dump-instr=no', '--callgrind-out-file=' + vg, process.execPath, '--max-semi-space-size=4', '--snapshot-blob', join(bin, blob), '--', bin, '--root', root, '--shim-pool', '0'], { stdio: ['ignore', 'pipe', 'pipe'], env }) : st ? spawn('strace', ['-f', '-tt', '-T', '-o', st, 'sh', join(bin, 'virtqemud.js'), '--root', root, '--shim-pool', '0'], { stdio: ['ignore', 'pipe', 'inherit'], env }) : perfOut ? spawn('perf', ['record', '-q', '-F', '20000', '-g', '-o', perfOut, '--', process.execPath, '--max-semi-space-size=4', ...prof, ...flags, '--snapshot-blob', join(bin, blob), '--', bin, '--root', root, '--shim-pool', '0'], { stdio: ['ignore', 'pipe', 'inherit'], env }) : spawn(process.execPath, ['--max-semi-space-size=4', ...prof, ...flags, '--snapshot-blob', join(bin, blob), '--', bin, '--root', root, '--shim-pool', '0'], { stdio: ['ignore', 'pipe', 'inherit'], env });
let readyAt; const ready = new Promise((res) => { let b = ''; child.stdout.on('data', (d) => { b += d; if (b.includes('\n') && readyAt === undefined) { readyAt = performance.now() - t0; res(JSON.parse(b.split('\n')[0])); } }); });
let rpc; let tries = 0;
for (;;) { try { rpc = await RpcClient.connect(sock, { clock, defaultTimeoutMs: 60000 }); break; } catch { tries++; await new Promise((r) => setTimeout(r, 1)); } }
const conn = performance.now() - t0;
process.on('exit', () => { for (const p of shimPids) try { process.kill(p, 'SIGCONT'); } catch {} });
let complete, cpu, calls = 0;
for (;;) { calls++; const { domains } = await rpc.call('virtq', 'listDomains', {}); if (domains.length === N) { complete = performance.now() - t0; if (vg) { const { execSync } = await import('node:child_process'); execSync(`callgrind_control -d ${child.pid}`, { stdio: 'ignore' }); cpu = cpuMs(child.pid); child.kill('SIGKILL'); } else if (perfOut || st) { const { execSync } = await import('node:child_process'); const vq = execSync(`pgrep -P ${child.pid}`).toString().trim(); cpu = cpuMs(Number(vq)); process.kill(Number(vq), 'SIGKILL'); } else cpu = cpuMs(child.pid); break; } await new Promise((r) => setImmediate(r)); }
const line = perfOut || vg || st ? {} : await ready;
console.log(JSON.stringify({ connectedMs: +conn.toFixed(1), tries, readyLineMs: readyAt, completeMs: +complete.toFixed(1), calls, cpuMs: +cpu.toFixed(1), recovery: line.recovered, load: readFileSync('/proc/loadavg', 'utf8').trim() }));
rpc.close();
if (process.env.KEEP === '1' || perfOut || vg || st) { await new Promise((r) => child.once('exit', r)); process.exit(0); }
await new Promise((r) => setTimeout(r, 1500));
child.kill(profDir === '-' ? 'SIGKILL' : 'SIGTERM');
await new Promise((r) => child.once('exit', r));
