// withIncomingUri: a restore's QEMU is spawned naming its image's descriptor (`-incoming fd:N`)
// in place of `-incoming defer`, and nothing else in its argv changes.
import { describe, expect, it } from 'vitest';
import { incomingSpawn, withIncomingUri, type IncomingStart } from '../../../shim/vm/incoming.js';

describe('withIncomingUri', () => {
  it('replaces the deferred source with the URI, leaving the rest of the argv as it was', () => {
    const argv = ['-name', 'guest=a', '-S', '-incoming', 'defer', '-chardev', 'socket,id=mon0'];
    expect(withIncomingUri(argv, 'fd:4')).toEqual(['-name', 'guest=a', '-S', '-incoming', 'fd:4', '-chardev', 'socket,id=mon0']);
    expect(argv[4]).toBe('defer');
  });

  it('refuses an argv without -incoming defer (a start that would otherwise boot or read twice)', () => {
    expect(() => withIncomingUri(['-S'], 'fd:3')).toThrow(/no -incoming defer/);
    expect(() => withIncomingUri(['-incoming', 'fd:3'], 'fd:4')).toThrow(/no -incoming defer/);
  });

  it('appends a start\'s own QEMU arguments after the argv, with its URI (an incoming migration over unix)', () => {
    const argv = ['-S', '-incoming', 'defer', '-chardev', 'socket,id=mon0'];
    const migration: IncomingStart = { leasesDisks: false, reason: 'incoming-migration', uri: () => 'unix:/run/m.sock', qemuArgs: ['-global', 'migration.x-events=on'], load: () => Promise.resolve() };
    expect(incomingSpawn(argv, migration, 1).argv).toEqual(['-S', '-incoming', 'unix:/run/m.sock', '-chardev', 'socket,id=mon0', '-global', 'migration.x-events=on']);
    expect(incomingSpawn(argv, { ...migration, uri: undefined }, 1).argv).toEqual([...argv, '-global', 'migration.x-events=on']);
    expect(incomingSpawn(argv, undefined, 1).argv).toEqual(argv);
  });
});
