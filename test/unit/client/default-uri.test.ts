// The default URI: -c (the CLI's), then VIRTQ_DEFAULT_URI, then uri_default in the user's
// client.json, then system for root and session for others; a broken config file is an error
// naming it, never a silent fallback.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { clientConfigPath, configuredUri, defaultUriWithSource, resolveDefaultUri } from '../../../client/default-uri.js';
import { parseUri } from '../../../protocol/index.js';
import { tmpRoot, type TmpRoot } from '../../helpers/tmp-root.js';

describe('resolveDefaultUri', () => {
  let home: TmpRoot;
  const writeConfig = (text: string, base = join(home.dir, '.config')): void => {
    mkdirSync(join(base, 'virtq'), { recursive: true });
    writeFileSync(join(base, 'virtq', 'client.json'), text);
  };
  beforeEach(() => { home = tmpRoot('vq-home-'); });
  afterEach(() => { home.remove(); });

  it('is qemu:///system for root, which is virtqemud at /run/virtq', () => {
    const uri = resolveDefaultUri({ env: { HOME: home.dir }, uid: 0 });
    expect(uri).toBe('qemu:///system');
    expect(parseUri(uri)).toMatchObject({ kind: 'daemon', daemon: 'virtqemud', socket: '/run/virtq/virtqemud.sock', admin: '/run/virtq/virtqemud-admin.sock' });
  });

  it('is qemu:///session for other users', () => {
    expect(defaultUriWithSource({ env: { HOME: home.dir }, uid: 1000 })).toEqual({ uri: 'qemu:///session', source: 'uid' });
  });

  it('takes uri_default from ~/.config/virtq/client.json over the uid', () => {
    writeConfig(JSON.stringify({ uri_default: 'qemu:///system?root=/srv/vq' }));
    expect(defaultUriWithSource({ env: { HOME: home.dir }, uid: 1000 })).toEqual({ uri: 'qemu:///system?root=/srv/vq', source: 'config' });
    expect(resolveDefaultUri({ env: { HOME: home.dir }, uid: 0 })).toBe('qemu:///system?root=/srv/vq');
  });

  it('reads $XDG_CONFIG_HOME/virtq/client.json instead of ~/.config when XDG_CONFIG_HOME is set', () => {
    writeConfig(JSON.stringify({ uri_default: 'qemu:///system?root=/home-config' }));
    writeConfig(JSON.stringify({ uri_default: 'qemu:///system?root=/xdg-config' }), home.path('xdg'));
    expect(clientConfigPath({ HOME: home.dir, XDG_CONFIG_HOME: home.path('xdg') })).toBe(home.path('xdg', 'virtq', 'client.json'));
    expect(resolveDefaultUri({ env: { HOME: home.dir, XDG_CONFIG_HOME: home.path('xdg') }, uid: 1000 })).toBe('qemu:///system?root=/xdg-config');
  });

  it('lets VIRTQ_DEFAULT_URI win over the config file, and treats an empty variable as unset', () => {
    writeConfig(JSON.stringify({ uri_default: 'qemu:///system?root=/from-file' }));
    expect(defaultUriWithSource({ env: { HOME: home.dir, VIRTQ_DEFAULT_URI: 'qemu:///embed?root=/x' }, uid: 1000 })).toEqual({ uri: 'qemu:///embed?root=/x', source: 'env' });
    expect(resolveDefaultUri({ env: { HOME: home.dir, VIRTQ_DEFAULT_URI: '' }, uid: 1000 })).toBe('qemu:///system?root=/from-file');
  });

  it('falls through a config file without uri_default, and reads no file without HOME or XDG_CONFIG_HOME', () => {
    writeConfig(JSON.stringify({ other: 1 }));
    expect(resolveDefaultUri({ env: { HOME: home.dir }, uid: 1000 })).toBe('qemu:///session');
    expect(clientConfigPath({})).toBeUndefined();
    expect(configuredUri({})).toBeUndefined();
  });

  it('refuses a config file that is not JSON, not an object, or names no valid URI, naming the file', () => {
    const path = home.path('.config', 'virtq', 'client.json');
    const env = { HOME: home.dir };
    writeConfig('{ uri_default: qemu }');
    expect(() => resolveDefaultUri({ env, uid: 1000 })).toThrow(expect.objectContaining({ code: 'INVALID_ARG', message: expect.stringContaining(`${path} is not valid JSON`) }));
    writeConfig('["qemu:///system"]');
    expect(() => resolveDefaultUri({ env, uid: 1000 })).toThrow(expect.objectContaining({ code: 'INVALID_ARG', message: `${path} must hold a JSON object such as {"uri_default": "qemu:///system"}` }));
    writeConfig(JSON.stringify({ uri_default: 42 }));
    expect(() => resolveDefaultUri({ env, uid: 1000 })).toThrow(expect.objectContaining({ message: `uri_default in ${path} must be a non-empty string` }));
    writeConfig(JSON.stringify({ uri_default: 'qmeu:///system' }));
    expect(() => resolveDefaultUri({ env, uid: 1000 })).toThrow(expect.objectContaining({ code: 'INVALID_ARG', message: expect.stringMatching(new RegExp(`^uri_default in ${path}: qmeu:///system: unknown scheme`)) }));
  });

  it('refuses a config file it cannot read rather than ignoring it', () => {
    // A directory where the file should be: EISDIR, whatever uid the suite runs as.
    mkdirSync(home.path('xdg', 'virtq', 'client.json'), { recursive: true });
    expect(() => resolveDefaultUri({ env: { XDG_CONFIG_HOME: home.path('xdg') }, uid: 1000 })).toThrow(expect.objectContaining({ code: 'INVALID_ARG', message: expect.stringContaining(`cannot read ${home.path('xdg', 'virtq', 'client.json')}`) }));
  });
});
