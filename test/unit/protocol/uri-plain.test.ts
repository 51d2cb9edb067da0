// parseUri's split of plain local URIs without the URL parser (protocol/uri.ts, plainParts): for
// every URI it takes, the same scheme, host, path and query values as `new URL`, and the same
// target or error from parseUri; anything it does not take is left to the URL parser.
import { describe, expect, it } from 'vitest';
import { parseUri, plainParts } from '../../../protocol/uri.js';

const KEYS = ['root', 'socket', 'mode', 'pkipath'];

/** What the URL parser gives for the parts parseUri reads. */
function viaUrl(uri: string): unknown {
  const url = new URL(uri);
  return { protocol: url.protocol, host: url.host, path: decodeURIComponent(url.pathname), query: KEYS.map((k) => url.searchParams.get(k)) };
}

function outcome(uri: string): unknown {
  try {
    return parseUri(uri, { XDG_RUNTIME_DIR: '/run/user/1000', HOME: '/home/u' });
  } catch (err) {
    return { error: (err as Error).message };
  }
}

describe('plainParts', () => {
  const plain = [
    'qemu:///system', 'qemu:///session', 'qemu:///embed', 'qemu:///other', 'storage:///system', 'secret:///session', 'network:///system',
    'nodedev:///system', 'shim:///web', 'cluster:///x', 'nosuch:///system',
    'qemu:///system?root=/tmp/vq-1_a.b~c', 'qemu:///session?socket=/run/x/v.sock&mode=ro', 'qemu:///system?mode=rw&root=/r',
    'qemu:///system?root=relative', 'qemu:///system?root=', 'qemu:///system?mode=bad', 'qemu:///system?root=/a&root=/b',
    'qemu:///embed?root=/r', 'qemu:///embed', 'shim:///web?root=/r&socket=/s.sock', 'qemu:///system?root=/a:b,c@d',
  ];
  it('splits plain local URIs as the URL parser does', () => {
    for (const uri of plain) {
      const parts = plainParts(uri);
      expect(parts, uri).toBeDefined();
      if (parts === undefined) continue;
      expect({ protocol: parts.protocol, host: parts.host, path: parts.path, query: KEYS.map((k) => parts.query.get(k)) }, uri).toEqual(viaUrl(uri));
    }
  });

  it('leaves every other URI to the URL parser', () => {
    const others = [
      'QEMU:///system', 'qemu:///System', 'qemu://host/system', 'qemu+ssh://h/system', 'qemu+tls://h/system', 'qemu+shim:///x/y.sock',
      'qemu:///a/../system', 'qemu:///system/', 'qemu:///system?root=/a%20b', 'qemu:///system?root=/a+b', 'qemu:///system?pkipath=/p',
      'qemu:///system?root=/a#f', ' qemu:///system', 'qemu:///system?', 'qemu:///system?root', 'qemu:///system?root=/a=b', 'shim:///web1',
      'qemu:/system', 'not a uri',
    ];
    for (const uri of others) expect(plainParts(uri), uri).toBeUndefined();
  });

  it('gives parseUri the target or error the URL parser would', () => {
    // Each plain URI again with a character that sends it through the URL parser and changes nothing.
    for (const uri of plain) {
      const viaParser = uri.includes('?') ? `${uri}&x=%20` : `${uri}?x=%20`;
      expect(plainParts(viaParser)).toBeUndefined();
      const a = outcome(uri);
      const b = outcome(viaParser);
      const sameUri = (v: unknown): unknown => (typeof v === 'object' && v !== null && 'uri' in v ? { ...v, uri: 'U' } : v);
      expect(sameUri(a), uri).toEqual(sameUri(typeof b === 'object' && b !== null && 'error' in b ? { error: (b as { error: string }).error.replace(viaParser, uri) } : b));
    }
  });
});
