import { describe, expect, it } from 'vitest';
import { DEFAULT_TLS_PORTS, parseUri, siblingUri } from '../../../protocol/index.js';

describe('parseUri (TLS)', () => {
  it('reads host, port and pkipath of every daemon scheme', () => {
    expect(parseUri('qemu+tls://host.example:1234/system?pkipath=/p')).toEqual({
      kind: 'remote', daemon: 'virtqemud', host: 'host.example', port: 1234, readOnly: false, uri: 'qemu+tls://host.example:1234/system?pkipath=/p',
      pki: { cert: '/p/clientcert.pem', key: '/p/clientkey.pem', ca: '/p/cacert.pem' },
    });
    expect(parseUri('storage+tls://h/system', { HOME: '/home/u' })).toMatchObject({ daemon: 'virtstoraged', port: DEFAULT_TLS_PORTS.virtstoraged, pki: { cert: '/home/u/.config/virtq/pki/clientcert.pem' } });
    for (const [scheme, daemon] of [['secret', 'virtsecretd'], ['network', 'virtnetworkd'], ['nodedev', 'virtnodedevd']] as const) {
      expect(parseUri(`${scheme}+tls://[::1]:9/system`)).toMatchObject({ kind: 'remote', daemon, host: '::1', port: 9 });
    }
  });

  it('refuses what does not apply to a remote daemon, saying why', () => {
    expect(() => parseUri('qemu+tls:///system')).toThrow(/names a host/);
    expect(() => parseUri('qemu+tls://h/session')).toThrow(/unknown path/);
    expect(() => parseUri('qemu+tls://h/system?root=/x')).toThrow(/\?root does not apply/);
    expect(() => parseUri('qemu+tls://h/system?mode=ro')).toThrow(/access rule/);
    expect(() => parseUri('qemu+tls://h/system?pkipath=rel')).toThrow(/absolute/);
    expect(() => parseUri('bogus+tls://h/system')).toThrow(/remote hosts are not supported/);
  });

  it('names the sibling daemon on the same remote host', () => {
    expect(siblingUri('qemu+tls://h:5/system?pkipath=/p', 'virtstoraged')).toBe('storage+tls://h/system?pkipath=/p');
  });
});
