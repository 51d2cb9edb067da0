// The upgrade's wire (decision 0021): the successor's --handover argument and the IPC messages
// are input like any other; malformed ones are INVALID_ARG (or ignored), never trusted.
import { describe, expect, it } from 'vitest';
import { formatHandoverFds, parseHandoverFds, parseSuccessorMessage, parseTake, successorArgs } from '../../../shim/upgrade/handover-wire.js';

const fds = { rw: 4, ro: 5, admin: 6, monitorListener: 7, consoleListener: 8, qmp: 9, console: 10 };

describe('shim upgrade wire', () => {
  it('round-trips the fd map, with and without the console connection', () => {
    expect(parseHandoverFds(formatHandoverFds(fds))).toEqual(fds);
    const { console: _c, ...noConsole } = fds;
    expect(parseHandoverFds(formatHandoverFds(noConsole))).toEqual(noConsole);
  });

  it.each([
    ['', 'is not NAME=FD'],
    ['rw=4,ro=5', 'missing admin'],
    ['rw=4,ro=4,admin=6,monitorListener=7,consoleListener=8,qmp=9', 'fd 4 is given for two sockets'],
    ['rw=4,rw=5,admin=6,monitorListener=7,consoleListener=8,qmp=9', 'rw is given twice'],
    ['rw=2,ro=5,admin=6,monitorListener=7,consoleListener=8,qmp=9', 'outside 4..1023'],
    ['rw=4,ro=5,admin=6,monitorListener=7,consoleListener=8,qmp=99999', 'is not NAME=FD'],
    ['evil=4,rw=5', 'unknown socket "evil"'],
    ['rw=4;rm -rf /', 'is not NAME=FD'],
    ['x'.repeat(600), 'too long'],
  ])('refuses --handover %j', (text, message) => {
    expect(() => parseHandoverFds(text)).toThrow(expect.objectContaining({ code: 'INVALID_ARG', message: expect.stringContaining(message) }));
  });

  it('accepts a take message and decodes its leftover bytes; refuses anything else', () => {
    expect(parseTake({ type: 'take', qmpLeftover: Buffer.from('{"event"').toString('base64'), qmpSession: { v: 1 } }).leftover.toString()).toBe('{"event"');
    for (const bad of [null, 'take', { type: 'take' }, { type: 'took', qmpLeftover: '' }, { type: 'take', qmpLeftover: '!!' }, { type: 'take', qmpLeftover: 'A'.repeat(2 * 1024 * 1024) }]) {
      expect(() => parseTake(bad)).toThrow(expect.objectContaining({ code: 'INVALID_ARG' }));
    }
  });

  it('reads the successor\'s messages and ignores what is none of them', () => {
    expect(parseSuccessorMessage({ type: 'ready' })).toEqual({ type: 'ready' });
    expect(parseSuccessorMessage({ type: 'taken', pid: 42 })).toEqual({ type: 'taken', pid: 42 });
    expect(parseSuccessorMessage({ type: 'failed', code: 'X', message: 'm'.repeat(5000) })).toMatchObject({ type: 'failed', message: 'm'.repeat(2000) });
    for (const junk of [null, 7, {}, { type: 'taken', pid: 'x' }, { type: 'taken', pid: 1.5 }, { type: 'failed', code: 1 }]) expect(parseSuccessorMessage(junk)).toBeUndefined();
  });

  it('derives the successor\'s command line: same options, --attach and --handover instead of a definition', () => {
    const argv = ['--root', '/r', '--definition', '-', '--paused', '--log-stderr', '--qemu=/q', '--metrics', '127.0.0.1:9'];
    expect(successorArgs(argv, 'vm1', fds)).toEqual(['--root', '/r', '--qemu=/q', '--metrics', '127.0.0.1:9', '--attach', 'vm1', '--handover', formatHandoverFds(fds)]);
    expect(successorArgs(['--attach', 'vm1', '--handover', 'rw=4', '--definition=/d.json'], 'vm1', fds)).toEqual(['--attach', 'vm1', '--handover', formatHandoverFds(fds)]);
    // A restored, migrated-in or warm-started VM's successor attaches like any other: no start flag survives.
    for (const start of [['--restore', '/img'], ['--restore=/img'], ['--incoming', 'tcp'], ['--start-request']]) {
      expect(successorArgs(['--root', '/r', '--definition', '-', ...start, '--no-register'], 'vm1', fds)).toEqual(['--root', '/r', '--no-register', '--attach', 'vm1', '--handover', formatHandoverFds(fds)]);
    }
  });
});
