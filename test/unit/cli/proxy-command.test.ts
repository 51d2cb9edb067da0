// `virtq proxy`: which local socket a URI names (read-only with -r, admin with --admin), and URIs it
// must not dial (another host, embed mode, garbage) refused with INVALID_ARG.
import { describe, expect, it } from 'vitest';
import { proxySocket } from '../../../cli/proxy-command.js';

describe('proxySocket', () => {
  const plain = { readOnly: false, admin: false };
  it('dials the daemon socket the URI names, its read-only one with -r, its admin one with --admin', async () => {
    await expect(proxySocket('qemu:///system?root=/r', plain, {})).resolves.toBe('/r/run/virtqemud.sock');
    await expect(proxySocket('qemu:///system?root=/r', { readOnly: true, admin: false }, {})).resolves.toBe('/r/run/virtqemud-ro.sock');
    await expect(proxySocket('storage:///system?root=/r&mode=ro', plain, {})).resolves.toBe('/r/run/virtstoraged-ro.sock');
    await expect(proxySocket('secret:///system?root=/r', { readOnly: false, admin: true }, {})).resolves.toBe('/r/run/virtsecretd-admin.sock');
  });

  it.each(['qemu+ssh://h/system', 'qemu:///embed?root=/r', 'nonsense', 'qemu:///system?root=relative'])('refuses %s', async (uri) => {
    await expect(proxySocket(uri, plain, {})).rejects.toMatchObject({ code: 'INVALID_ARG' });
  });
});
