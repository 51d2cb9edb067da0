#!/usr/bin/env python3
"""Module-load CPU of the shim bundles (bench/RESULTS.md, "Module-load CPU").

Runs `node [flags] BUNDLE --help` (which loads and evaluates every module, prints the usage and
exits) N times per bundle and prints the median CPU time (user + system, from
getrusage(RUSAGE_CHILDREN), precise to the microsecond; Node has no API for a child's rusage).
CPU is steadier than wall time on the shared development machines.

    python3 bench/shim/module-cpu.py [N]

Bundles: dist/bin/virtq-shim.js with and without its shebang's V8 flags, and every variant
bundle a `node bench/shim/run.mjs --only variants` run left in .cache/bench/shim/variants/.
"""
import os
import resource
import statistics
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
N = int(sys.argv[1]) if len(sys.argv) > 1 else 11


def cpu_ms(cmd):
    runs = []
    for _ in range(N):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        runs.append((after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime) * 1000)
    return statistics.median(runs), min(runs)


def main():
    shim = os.path.join(REPO, 'dist', 'bin', 'virtq-shim.js')
    with open(shim, encoding='utf8') as f:
        shebang = f.readline().split()
    flags = [a for a in shebang if a.startswith('--')]
    builtins = "require('net');require('child_process');require('http');require('stream');require('crypto');require('fs/promises');require('readline')"
    cases = [
        ('node -e 0', ['node', '-e', '0']),
        ('node -e <7 built-ins>', ['node', '-e', builtins]),
        ('node --max-old-space-size=64 -e <7 built-ins>', ['node', '--max-old-space-size=64', '-e', builtins]),
        ('shipped bundle, no flags', ['node', shim, '--help']),
        ('shipped bundle, its flags', ['node', *flags, shim, '--help']),
    ]
    variants = os.path.join(REPO, '.cache', 'bench', 'shim', 'variants')
    if os.path.isdir(variants):
        for name in sorted(os.listdir(variants)):
            if name.endswith('.js'):
                cases.append((f'variant {name[:-3]}, no flags', ['node', os.path.join(variants, name), '--help']))
    print(f'load average {open("/proc/loadavg").read().split()[:3]}; median (min) of {N} runs, CPU ms')
    for label, cmd in cases:
        med, low = cpu_ms(cmd)
        print(f'{med:7.1f} ({low:6.1f})  {label}')


main()
