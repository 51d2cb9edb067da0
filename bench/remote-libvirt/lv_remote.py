#!/usr/bin/python3
"""The libvirt side of issue #19's remote benchmark (bench/remote-libvirt/run.sh): python3-libvirt
over several URIs of one private libvirtd, interleaved round by round. Every figure is timed here
(time.perf_counter) around the libvirt call only.

  lv_remote.py setup URI PREFIX N IDLE QEMU      define N inactive domains PREFIX000.. and one
                                                 running idle guest PREFIXrun (prints its state)
  lv_remote.py bench ROUNDS CALLS LISTCALLS NAME label=URI...
      per round, per URI: one connection; 200 warm-up calls, then CALLS x dom.state() of NAME (µs)
      and LISTCALLS x conn.listAllDomains(0) (ms); prints one JSON object with summaries
"""
import json
import sys
import time

import libvirt

libvirt.registerErrorHandler(lambda _ctx, _err: None, None)


def xml(name, idle, qemu):
    # The idle guest as bench/compare-libvirt/lv.py defines it (virtq's idleDefinition).
    return f"""<domain type='qemu'>
  <name>{name}</name>
  <memory unit='MiB'>32</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type><kernel>{idle}</kernel></os>
  <features><acpi/></features>
  <devices>
    <emulator>{qemu}</emulator>
    <controller type='usb' model='none'/>
    <memballoon model='none'/>
    <serial type='pty'/>
  </devices>
</domain>"""


def pct(s, p):
    i = min(len(s) - 1, max(0, -(-p * len(s) // 100) - 1))
    return s[int(i)]


def summarize(v):
    s = sorted(v)
    return {'n': len(s), 'p50': pct(s, 50), 'p90': pct(s, 90), 'p99': pct(s, 99), 'mean': sum(s) / len(s)}


def setup(uri, prefix, n, idle, qemu):
    c = libvirt.open(uri)
    for i in range(n):
        c.defineXML(xml(f'{prefix}{i:03d}', idle, qemu))
    run = c.defineXML(xml(f'{prefix}run', idle, qemu))
    run.create()
    print(json.dumps({'defined': n + 1, 'runState': run.state()[0] == libvirt.VIR_DOMAIN_RUNNING}))
    c.close()


def bench(rounds, calls, list_calls, name, uris):
    raw = {label: {'state': [], 'list': [], 'rows': 0} for label, _ in uris}
    pc = time.perf_counter
    for r in range(rounds):
        for label, uri in uris:
            c = libvirt.open(uri)
            dom = c.lookupByName(name)
            for _ in range(200):
                dom.state()
            into = raw[label]['state']
            for _ in range(calls):
                t = pc()
                dom.state()
                into.append((pc() - t) * 1e6)
            into = raw[label]['list']
            for _ in range(list_calls):
                t = pc()
                rows = c.listAllDomains(0)
                into.append((pc() - t) * 1e3)
            raw[label]['rows'] = len(rows)
            c.close()
            print(f'libvirt {label} done', file=sys.stderr, flush=True)
    out = {label: {'stateUs': summarize(v['state']), 'listMs': summarize(v['list']), 'rows': v['rows']}
           for label, v in raw.items()}
    print(json.dumps(out))


if __name__ == '__main__':
    a = sys.argv[1:]
    if a[0] == 'setup':
        setup(a[1], a[2], int(a[3]), a[4], a[5])
    else:
        bench(int(a[1]), int(a[2]), int(a[3]), a[4], [tuple(x.split('=', 1)) for x in a[5:]])
