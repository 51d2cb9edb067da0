#!/usr/bin/python3
"""The libvirt side of bench/storage/run.mjs: python3-libvirt (the C library's binding) driven by
one JSON command per line on stdin, one JSON answer per line on stdout. Latencies are timed here
with time.perf_counter around the libvirt calls only (the volume lookup included, as a client
that holds a name must do it), so the pipe to run.mjs costs nothing.

Commands ({"op": ..., ...}):
  open                              connect to $VQSB_URI
  pool name path                    a transient `dir` pool at path (poolCreateXML), refreshed
  refresh                           pool.refresh(0)
  create name format bytes [backing backingFormat]   pool.createXML, allocation 0 (sparse); ms
  clone source name [sync path]     pool.createXMLFrom (virsh vol-clone), then (sync) fsync of path
                                    and of its directory; ms
  delete name                       lookup + vol.delete(0) (virsh vol-delete); ms
  remove name                       the same, untimed, and no error when it is missing
  noop                              pool.isActive() (a round trip to the storage driver, no file); ms
  version                           libvirt's version string
"""
import json
import os
import sys
import time
from xml.sax.saxutils import escape

import libvirt

URI = os.environ['VQSB_URI']
libvirt.registerErrorHandler(lambda _ctx, _err: None, None)
conn = None
pool = None


def open_conn(deadline=30.0):
    t0 = time.perf_counter()
    while True:
        try:
            return libvirt.open(URI)
        except libvirt.libvirtError:
            if time.perf_counter() - t0 > deadline:
                raise
            time.sleep(0.01)


def op_open(_m):
    global conn
    conn = open_conn()
    v = conn.getLibVersion()
    return {'version': f'{v // 1000000}.{v // 1000 % 1000}.{v % 1000}'}


def op_pool(m):
    global pool
    xml = f"""<pool type='dir'><name>{escape(m['name'])}</name>
  <target><path>{escape(m['path'])}</path></target></pool>"""
    pool = conn.storagePoolCreateXML(xml, 0)
    pool.refresh(0)
    return {}


def op_refresh(_m):
    pool.refresh(0)
    return {}


def vol_xml(name, fmt, capacity, backing=None, backing_format=None):
    b = ''
    if backing is not None:
        b = f"<backingStore><path>{escape(backing)}</path><format type='{backing_format}'/></backingStore>"
    return f"""<volume><name>{escape(name)}</name>
  <capacity unit='bytes'>{capacity}</capacity><allocation unit='bytes'>0</allocation>
  <target><format type='{fmt}'/></target>{b}</volume>"""


def op_create(m):
    xml = vol_xml(m['name'], m['format'], m['bytes'], m.get('backing'), m.get('backingFormat'))
    t0 = time.perf_counter()
    pool.createXML(xml, 0)
    return {'ms': (time.perf_counter() - t0) * 1000}


def op_clone(m):
    t0 = time.perf_counter()
    src = pool.storageVolLookupByName(m['source'])
    # What virsh vol-clone does: the source's XML with a new name, then createXMLFrom.
    xml = src.XMLDesc(0)
    start = xml.index('<name>') + len('<name>')
    xml = xml[:start] + escape(m['name']) + xml[xml.index('</name>'):]
    pool.createXMLFrom(xml, src, 0)
    if m.get('sync') is not None:
        # What libvirt leaves out for a qcow2 clone (qemu-img convert's output cache is
        # "unsafe" by default: no flush after the data), and the directory entry's fsync.
        for path in (m['sync'], os.path.dirname(m['sync'])):
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
    return {'ms': (time.perf_counter() - t0) * 1000}


def op_delete(m):
    t0 = time.perf_counter()
    pool.storageVolLookupByName(m['name']).delete(0)
    return {'ms': (time.perf_counter() - t0) * 1000}


def op_noop(_m):
    # libvirt's RPC floor: a call that reaches the storage driver and touches no file.
    t0 = time.perf_counter()
    pool.isActive()
    return {'ms': (time.perf_counter() - t0) * 1000}


def op_remove(m):
    try:
        pool.storageVolLookupByName(m['name']).delete(0)
    except libvirt.libvirtError:
        pass
    return {}


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
