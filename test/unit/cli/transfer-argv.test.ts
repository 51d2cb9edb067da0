// The lean entry's grammar (cli/transfer-argv.ts): what it takes, and every spelling it leaves to
// the full CLI (undefined), so commander's own errors and help stay the full CLI's.
import { describe, expect, it } from 'vitest';
import { parseTransferArgv } from '../../../cli/transfer-argv.js';

describe('parseTransferArgv', () => {
  it('takes vol-upload and vol-download with -c/--connect and --json anywhere', () => {
    expect(parseTransferArgv(['vol-upload', 'p', 'v', 'f'])).toEqual({ command: 'vol-upload', connect: undefined, json: false, pool: 'p', name: 'v', file: 'f' });
    expect(parseTransferArgv(['-c', 'storage:///system', 'vol-download', 'p', 'v', './out.raw', '--json'])).toEqual({ command: 'vol-download', connect: 'storage:///system', json: true, pool: 'p', name: 'v', file: './out.raw' });
    expect(parseTransferArgv(['--json', 'vol-upload', 'p', '--connect=qemu:///session', 'v', 'f'])).toMatchObject({ connect: 'qemu:///session', json: true, pool: 'p', name: 'v', file: 'f' });
    expect(parseTransferArgv(['vol-upload', 'p', 'v', 'f', '--connect', 'storage:///session'])).toMatchObject({ connect: 'storage:///session' });
  });

  it.each([
    [[]], [['vol-upload']], [['vol-upload', 'p', 'v']], [['vol-upload', 'p', 'v', 'f', 'extra']],
    [['vol-upload', 'p', 'v', 'f', '--help']], [['help', 'vol-upload']], [['vol-upload', '--help']],
    [['vol-upload', 'p', 'v', '-']], [['vol-upload', 'p', '', 'f']], [['vol-upload', 'p', 'v', '--', 'f']],
    [['-cstorage:///system', 'vol-upload', 'p', 'v', 'f']], [['-c', 'a', '-c', 'b', 'vol-upload', 'p', 'v', 'f']],
    [['--json', '--json', 'vol-upload', 'p', 'v', 'f']], [['-c', 'vol-upload', 'p', 'v', 'f']], [['-c', '--json', 'vol-upload', 'p', 'v', 'f']],
    [['vol-clone', 'p', 'v', 'f']], [['vol-upload', 'p', 'v', 'f', '-V']], [['pool-list', 'vol-upload']], [['--bogus', 'vol-upload', 'p', 'v', 'f']],
  ])('leaves %j to the full CLI', (argv) => {
    expect(parseTransferArgv(argv)).toBeUndefined();
  });
});
