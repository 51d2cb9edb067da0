#!/usr/bin/python3
"""The libvirt side of bench/compare-libvirt/run.mjs: python3-libvirt (the C library's binding)
driven by one JSON command per line on stdin, one JSON answer per line on stdout. Every figure is
timed here, around the libvirt call only (time.perf_counter), so the pipe to run.mjs costs nothing.

Commands ({"op": ..., ...}):
  open                         connect to $VQCMP_URI (reconnects after a daemon restart)
  define names                 defineXML of the idle guest for each name (persistent, inactive)
  undefine names
  create name                  dom.create(): defined → running; ms
  destroy name                 dom.destroy(); ms
  startMany names width        create `width` at a time (one connection each), no timing
  destroyMany names
  rtt name kind calls warm     dom.state() / dom.info() in a loop; µs summary
  list calls warm              conn.listAllDomains(0); ms summary and the count
  concurrent names             one thread and connection per name, all dom.create() at once;
                               wall ms and each call's ms; then states
  concurrentDestroy names
  restart cmd pidfile n        kill -9 libvirtd (pid from pidfile), run cmd (libvirtd --daemon),
                               time: socket accepts, first listAllDomains with n domains, all n
                               listed running (listAllDomains(RUNNING))
  states names                 dom.state() of each
"""
import json
import os
import signal
import subprocess
import sys
import threading
import time

import libvirt

URI = os.environ['VQCMP_URI']
IDLE = os.environ['VQCMP_IDLE']
QEMU = os.environ.get('VQCMP_QEMU_PATH', '/usr/bin/qemu-system-x86_64')

# libvirt prints every error to stderr by default; the benchmark reports them itself.
libvirt.registerErrorHandler(lambda _ctx, _err: None, None)


def xml(name: str) -> str:
    # The idle guest as virtq runs it: multiboot direct-kernel boot, 32 MiB, 1 vCPU, TCG, pc,
    # ACPI on (libvirt passes -no-acpi without <acpi/>; virtq keeps it for the power button),
    # no USB controller and no balloon (virtq adds neither), a serial port (virtq has one).
    return f"""<domain type='qemu'>
  <name>{name}</name>
  <memory unit='MiB'>32</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type><kernel>{IDLE}</kernel></os>
  <features><acpi/></features>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>restart</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <emulator>{QEMU}</emulator>
    <controller type='usb' model='none'/>
    <memballoon model='none'/>
    <serial type='pty'/>
  </devices>
</domain>"""


def pct(s, p):
    if not s:
        return None
    i = min(len(s) - 1, max(0, -(-p * len(s) // 100) - 1))
    return s[int(i)]


def summarize(v):
    s = sorted(v)
    return {'n': len(s), 'min': s[0], 'p50': pct(s, 50), 'p90': pct(s, 90), 'p99': pct(s, 99),
            'p999': pct(s, 99.9), 'max': s[-1], 'mean': sum(s) / len(s)}


conn = None


def open_conn(deadline=30.0):
    t0 = time.perf_counter()
    while True:
        try:
            return libvirt.open(URI)
        except libvirt.libvirtError:
            if time.perf_counter() - t0 > deadline:
                raise
            time.sleep(0.001)


def op_open(_m):
    global conn
    if conn is not None:
        try:
            conn.close()
        except libvirt.libvirtError:
            pass
    conn = open_conn()
    return {'version': conn.getLibVersion(), 'hv': conn.getVersion()}


def op_define(m):
    for n in m['names']:
        conn.defineXML(xml(n))
    return {}


def op_undefine(m):
    for n in m['names']:
        d = conn.lookupByName(n)
        if d.isActive():
            d.destroy()
        d.undefine()
    return {}


def op_create(m):
    d = conn.lookupByName(m['name'])
    t0 = time.perf_counter()
    d.create()
    ms = (time.perf_counter() - t0) * 1000
    st = d.state()[0]
    if st != libvirt.VIR_DOMAIN_RUNNING:
        raise RuntimeError(f'{m["name"]}: state {st} after create')
    return {'ms': ms}


def op_destroy(m):
    d = conn.lookupByName(m['name'])
    t0 = time.perf_counter()
    d.destroy()
    return {'ms': (time.perf_counter() - t0) * 1000}


def run_threads(names, fn, width=None):
    """Runs fn(conn, name) for every name on `width` threads (one connection each)."""
    width = width or len(names)
    conns = [open_conn() for _ in range(min(width, len(names)))]
    lock = threading.Lock()
    queue = list(names)
    each = {}
    errors = []
    barrier = threading.Barrier(len(conns) + 1)
    t0 = [0.0]

    def worker(c):
        barrier.wait()
        while True:
            with lock:
                if not queue:
                    return
                n = queue.pop(0)
            try:
                fn(c, n)
                each[n] = (time.perf_counter() - t0[0]) * 1000
            except libvirt.libvirtError as e:
                errors.append(f'{n}: {e}')

    threads = [threading.Thread(target=worker, args=(c,)) for c in conns]
    for t in threads:
        t.start()
    t0[0] = time.perf_counter()
    barrier.wait()
    for t in threads:
        t.join()
    wall = (time.perf_counter() - t0[0]) * 1000
    for c in conns:
        c.close()
    if errors:
        raise RuntimeError('; '.join(errors[:5]))
    return wall, [each[n] for n in names]


def op_startMany(m):
    run_threads(m['names'], lambda c, n: c.lookupByName(n).create(), m.get('width', 8))
    return {}


def op_destroyMany(m):
    run_threads(m['names'], lambda c, n: c.lookupByName(n).destroy(), m.get('width', 8))
    return {}


def op_concurrent(m):
    # Look the domains up first so only create() is timed.
    wall, each = run_threads(m['names'], lambda c, n: c.lookupByName(n).create())
    running = sum(1 for n in m['names'] if conn.lookupByName(n).state()[0] == libvirt.VIR_DOMAIN_RUNNING)
    return {'wall': wall, 'each': each, 'running': running}


def op_concurrentDestroy(m):
    wall, each = run_threads(m['names'], lambda c, n: c.lookupByName(n).destroy())
    return {'wall': wall, 'each': each}


def op_rtt(m):
    d = conn.lookupByName(m['name'])
    call = d.state if m['kind'] == 'state' else d.info
    for _ in range(m.get('warm', 500)):
        call()
    lat = []
    pc = time.perf_counter
    for _ in range(m['calls']):
        t = pc()
        call()
        lat.append((pc() - t) * 1e6)
    return summarize(lat)


def op_list(m):
    n = 0
    for _ in range(m.get('warm', 100)):
        n = len(conn.listAllDomains(0))
    lat = []
    pc = time.perf_counter
    for _ in range(m['calls']):
        t = pc()
        conn.listAllDomains(0)
        lat.append((pc() - t) * 1000)
    return {'rows': n, **summarize(lat)}


def op_states(m):
    return {'states': [conn.lookupByName(n).state()[0] for n in m['names']]}


def op_restart(m):
    global conn
    with open(m['pidfile']) as f:
        old = int(f.read().strip())
    try:
        conn.close()
    except libvirt.libvirtError:
        pass
    conn = None
    os.kill(old, signal.SIGKILL)
    # The old daemon is gone once its pid file lock is free; wait until /proc says it is dead.
    while True:
        try:
            with open(f'/proc/{old}/stat') as f:
                if f.read().rsplit(')', 1)[1].split()[0] == 'Z':
                    break
        except FileNotFoundError:
            break
        time.sleep(0.0005)
    n = m['n']
    pc = time.perf_counter
    t0 = pc()
    subprocess.Popen(m['cmd'], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    c = open_conn()
    accepted = (pc() - t0) * 1000
    complete = None
    while True:
        # All domains, then the running ones (one call each; libvirt filters in the daemon).
        doms = c.listAllDomains(0)
        t = (pc() - t0) * 1000
        if len(doms) == n and complete is None:
            complete = t
        if len(doms) == n and len(c.listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_RUNNING)) == n:
            all_running = (pc() - t0) * 1000
            break
        if t > 60_000:
            raise RuntimeError(f'restart: {len(doms)} domains after 60 s')
    conn = c
    return {'accepted': accepted, 'complete': complete, 'allRunning': all_running}


def main():
    for line in sys.stdin:
        m = json.loads(line)
        try:
            out = {'ok': True, **globals()[f'op_{m["op"]}'](m)}
        except Exception as e:  # reported to run.mjs, which fails the run
            out = {'ok': False, 'error': f'{type(e).__name__}: {e}'}
        sys.stdout.write(json.dumps(out) + '\n')
        sys.stdout.flush()


if __name__ == '__main__':
    main()
