#!/usr/bin/python3
"""Runs a command as a child of a child subreaper that reaps every orphan at once.

libvirtd --daemon and virtlogd --daemon double-fork, and so does every QEMU libvirtd starts: they
end up children of the nearest subreaper. PID 1 on this machine reaps orphans only every ~1.7 s
(HOST-FACTS.md), which libvirt's destroy would wait for; a host with systemd reaps at once. This
process stands in for that init: PR_SET_CHILD_SUBREAPER, then waitpid(-1) in a loop.

    subreaper.py CMD ARGS...   exits with CMD's status once CMD has exited
"""
import ctypes
import os
import signal
import sys

PR_SET_CHILD_SUBREAPER = 36


def main() -> int:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        print(f'subreaper: prctl failed: {os.strerror(ctypes.get_errno())}', file=sys.stderr)
        return 2
    pid = os.fork()
    if pid == 0:
        try:
            os.execvp(sys.argv[1], sys.argv[1:])
        finally:
            os._exit(127)
    # Pass termination requests on to the command; it cleans up and exits.
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda s, _f: os.kill(pid, s))
    while True:
        try:
            p, status = os.wait()
        except ChildProcessError:
            return 1
        except InterruptedError:
            continue
        if p == pid:
            code = os.waitstatus_to_exitcode(status)
            return code if code >= 0 else 128 - code


if __name__ == '__main__':
    sys.exit(main())
