// The ssh URIs (contract): what reaches ssh (host, user, port, key, host key checking), the local
// URI the far side's proxy dials (root, socket, mode only), sibling daemons on the same host, and
// hostile or malformed URIs refused with INVALID_ARG before any process is started.
import { describe, expect, it } from 'vitest';
import { parseUri, siblingUri } from '../../../protocol/index.js';

describe('parseUri for +ssh schemes', () => {
  it('reads user, host, port and the client-side options, and keeps only root, socket and mode for the far side', () => {
    const t = parseUri('qemu+ssh://alice@host.example:2222/system?keyfile=/k/id&known_hosts=/k/kh&no_verify=1&root=/srv/vq&command=/opt/virtq/bin/virtq');
    expect(t).toEqual({
      kind: 'ssh', daemon: 'virtqemud', host: 'host.example', user: 'alice', port: 2222, keyfile: '/k/id', knownHosts: '/k/kh',
      noVerify: true, command: '/opt/virtq/bin/virtq', readOnly: false, remoteUri: 'qemu:///system?root=/srv/vq',
      uri: 'qemu+ssh://alice@host.example:2222/system?keyfile=/k/id&known_hosts=/k/kh&no_verify=1&root=/srv/vq&command=/opt/virtq/bin/virtq',
    });
  });

  it('defaults to virtq on the remote PATH, ssh\'s own user, port and known_hosts', () => {
    expect(parseUri('qemu+ssh://h/system')).toEqual({ kind: 'ssh', daemon: 'virtqemud', host: 'h', noVerify: false, command: 'virtq', readOnly: false, remoteUri: 'qemu:///system', uri: 'qemu+ssh://h/system' });
  });

  it('reaches every daemon, session or system, read-only with ?readonly or mode=ro', () => {
    expect(parseUri('storage+ssh://h/session?readonly')).toMatchObject({ daemon: 'virtstoraged', readOnly: true, remoteUri: 'storage:///session?mode=ro' });
    expect(parseUri('secret+ssh://h/system?mode=ro')).toMatchObject({ daemon: 'virtsecretd', readOnly: true, remoteUri: 'secret:///system?mode=ro' });
    expect(parseUri('network+ssh://h/system?readonly=0')).toMatchObject({ daemon: 'virtnetworkd', readOnly: false });
    expect(parseUri('nodedev+ssh://h/system?socket=/x/n.sock')).toMatchObject({ daemon: 'virtnodedevd', remoteUri: 'nodedev:///system?socket=/x/n.sock' });
  });

  it('hands ssh an IPv6 address without its brackets', () => {
    expect(parseUri('qemu+ssh://root@[::1]:2222/system')).toMatchObject({ host: '::1', port: 2222, user: 'root' });
  });

  it('names the same host\'s other daemons with the same ssh options', () => {
    expect(siblingUri('qemu+ssh://u@h:22/system?keyfile=/k&root=/r&socket=/r/run/virtqemud.sock', 'virtstoraged')).toBe('storage+ssh://u@h:22/system?keyfile=/k&root=/r');
    expect(parseUri(siblingUri('qemu+ssh://h/system?readonly=1', 'virtsecretd'))).toMatchObject({ daemon: 'virtsecretd', readOnly: true, host: 'h' });
  });

  it.each([
    ['qemu+ssh:///system', 'HOST'],
    ['qemu+ssh://-oProxyCommand=x/system', 'HOST'],
    ['qemu+ssh://-l@h/system', 'not a user name'],
    ['qemu+ssh://u:secret@h/system', 'passwords are not taken'],
    ['qemu+ssh://h/embed?root=/r', 'unknown path /embed'],
    ['qemu+ssh://h/system?keyfile=relative/key', 'keyfile must be an absolute path'],
    ['qemu+ssh://h/system?known_hosts=kh', 'known_hosts must be an absolute path'],
    ['qemu+ssh://h/system?root=r', 'root must be an absolute path'],
    ['qemu+ssh://h/system?no_verify=maybe', 'no_verify must be 0 or 1'],
    ['qemu+ssh://h/system?mode=admin', 'mode must be ro or rw'],
    ['qemu+ssh://h/system?command=-oX', 'command must name'],
    ['qemu+ssh://h/system?netcat=/bin/nc', 'unknown option "netcat"'],
    ['qemu+ssh://h:99999/system', 'not a URI'],
    ['shim+ssh://h/system', 'unknown scheme'],
    ['qemu+ssh://a%zz@h/system', 'bad percent-encoding'],
  ])('refuses %s', (uri, why) => {
    expect(() => parseUri(uri)).toThrow(expect.objectContaining({ code: 'INVALID_ARG', message: expect.stringContaining(why) }));
  });

  it('points a local URI with a host at the +ssh form', () => {
    expect(() => parseUri('qemu://h/system')).toThrow(expect.objectContaining({ code: 'INVALID_ARG', message: expect.stringContaining('qemu+ssh://HOST/system') }));
  });
});
