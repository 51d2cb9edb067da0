"""Two clients of QEMU's own Python QMP library (qemu.qmp) on one shared QMP socket at once,
driven by test/integration/qmp-proxy-python.test.ts: each negotiates, runs commands concurrently
(the library numbers its own ids), and both wait for the STOP and RESUME events the test causes
with `virtq suspend`/`resume` after this script prints READY. One JSON object per line on stdout.
"""
import asyncio
import json
import sys

from qemu.qmp import EventListener, ExecuteError, QMPClient


def say(**kw):
    print(json.dumps(kw), flush=True)


async def main(path):
    a, b = QMPClient('tool-a'), QMPClient('tool-b')
    await a.connect(path)
    await b.connect(path)
    say(step='greeting', a=dict(a.greeting.QMP.version['qemu']), b=dict(b.greeting.QMP.version['qemu']))

    # Interleaved on the one monitor behind the socket; each reply must reach the client that asked.
    replies = await asyncio.gather(a.execute('query-status'), b.execute('query-name'),
                                   a.execute('query-name'), b.execute('query-status'))
    say(step='concurrent', replies=replies)

    la, lb = EventListener(('STOP', 'RESUME')), EventListener(('STOP', 'RESUME'))
    with a.listen(la), b.listen(lb):
        say(step='READY')

        async def two(listener):
            return [(await listener.get())['event'] for _ in range(2)]
        seen = await asyncio.wait_for(asyncio.gather(two(la), two(lb)), 60)
    say(step='events', a=seen[0], b=seen[1])

    try:
        await a.execute('quit')
        say(step='quit', refused=False)
    except ExecuteError as err:
        say(step='quit', refused=True, error_class=err.error_class, desc=err.error.error.desc)
    say(step='after', status=await b.execute('query-status'))
    await a.disconnect()
    await b.disconnect()
    say(step='done')


asyncio.run(main(sys.argv[1]))
