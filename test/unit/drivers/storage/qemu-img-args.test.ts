// The command lines qemu-img is given: formats and sizes where qemu-img expects them, secrets
// only as `--object` naming a file, commas in paths escaped inside option strings.
import { describe, expect, it } from 'vitest';
import { convertArgs, createArgs, optValue, resizeArgs } from '../../../../drivers/storage/qemu-img-args.js';

const secret = { object: 'secret,id=sec1,file=/run/s/key,format=raw', id: 'sec1' };

describe('qemu-img arguments', () => {
  it('creates with a backing image and its format', () => {
    expect(createArgs({ path: '/p/.t', format: 'qcow2', capacityBytes: 1024, backing: { path: '/p/b', format: 'raw' } }))
      .toEqual(['create', '-q', '-f', 'qcow2', '-b', '/p/b', '-F', 'raw', '/p/.t', '1024']);
  });

  it('creates LUKS through a secret object and never anything else secret', () => {
    expect(createArgs({ path: '/p/.t', format: 'qcow2', capacityBytes: 1, secret, iterTimeMs: 10 })).toEqual([
      'create', '-q', '-f', 'qcow2', '--object', secret.object, '-o', 'encrypt.format=luks,encrypt.key-secret=sec1,encrypt.iter-time=10', '/p/.t', '1',
    ]);
  });

  it('converts with progress from the source format to the target format', () => {
    expect(convertArgs('/p/a', 'qcow2', '/p/.t', 'qcow2')).toEqual(['convert', '-p', '-f', 'qcow2', '-O', 'qcow2', '/p/a', '/p/.t']);
    expect(convertArgs('/p/a', 'raw', '/p/.t', 'raw', true)).toEqual(['convert', '-p', '-t', 'none', '-W', '-m', '16', '-f', 'raw', '-O', 'raw', '/p/a', '/p/.t']);
  });

  it('resizes by format, or through --image-opts for an encrypted image, escaping commas', () => {
    expect(resizeArgs({ path: '/p/a', format: 'raw', capacityBytes: 5, shrink: true })).toEqual(['resize', '-q', '--shrink', '-f', 'raw', '/p/a', '5']);
    expect(resizeArgs({ path: '/p,x/a', format: 'qcow2', capacityBytes: 5, shrink: false, secret })).toEqual([
      'resize', '-q', '--object', secret.object, '--image-opts', 'driver=qcow2,file.filename=/p,,x/a,encrypt.key-secret=sec1', '5',
    ]);
    expect(optValue('a,b,,c')).toBe('a,,b,,,,c');
  });
});
