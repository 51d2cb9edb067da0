// `virtq convert` and `virtq define --from-libvirt-xml` as a user runs them: the definition on
// stdout or sent to virtqemud, one error line listing what cannot be carried over, warnings on
// stderr with --lossy, bridge mappings, and the usage errors.
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { fake } from './fake-io.js';

const fixtures = fileURLToPath(new URL('../../fixtures/libvirt/', import.meta.url));

describe('virtq convert', () => {
  it('prints the definition as JSON', async () => {
    const f = fake({ cwd: fixtures });
    expect(await f.run('convert', 'minimal.xml')).toBe(0);
    expect(JSON.parse(f.stdout.text)).toMatchObject({ name: 'small1', memoryMiB: 256, disks: [{ path: '/srv/images/small1.img' }] });
    expect(f.stderr.text).toBe('');
    expect(f.calls).toEqual([]);
  });

  it('fails with one line listing what cannot be carried over, and with --lossy warns and prints the rest', async () => {
    const f = fake({ cwd: fixtures });
    expect(await f.run('convert', 'numa.xml')).toBe(1);
    expect(f.stdout.text).toBe('');
    expect(f.stderr.text).toMatch(/^virtq: INVALID_ARG: numa\.xml: 5 parts of this libvirt domain cannot be carried over to virtq \(--lossy leaves them out\): \/domain\/vcpu\/@cpuset: .*; \/domain\/cpu\/numa: virtq gives the guest no NUMA cells\n$/);
    const g = fake({ cwd: fixtures });
    expect(await g.run('convert', 'numa.xml', '--lossy')).toBe(0);
    expect(JSON.parse(g.stdout.text)).toEqual({ name: 'numa2', memoryMiB: 8192, vcpus: 4, machine: 'q35', accel: 'kvm', cpu: 'host' });
    expect(g.stderr.text.split('\n').filter((l) => l !== '')).toEqual([
      'virtq: warning: left out /domain/vcpu/@cpuset: virtq does not pin vCPUs to host CPUs',
      'virtq: warning: left out /domain/cputune: virtq does not pin, weight or throttle vCPUs or QEMU threads',
      'virtq: warning: left out /domain/numatune: virtq gives guest memory no NUMA placement: it goes where the host kernel puts it',
      'virtq: warning: left out /domain/cpu/topology: virtq gives QEMU a vCPU count only (-smp N): QEMU picks sockets, cores and threads',
      'virtq: warning: left out /domain/cpu/numa: virtq gives the guest no NUMA cells',
    ]);
  });

  it('maps bridges given with --bridge-network (repeatable) and refuses a malformed one as a usage error', async () => {
    const f = fake({ cwd: fixtures });
    expect(await f.run('convert', 'interfaces.xml', '--bridge-network', 'br9=x', '--bridge-network', 'br0=lan')).toBe(0);
    expect((JSON.parse(f.stdout.text) as { interfaces: unknown[] }).interfaces[2]).toEqual({ type: 'network', network: 'lan' });
    const g = fake({ cwd: fixtures });
    expect(await g.run('convert', 'interfaces.xml', '--bridge-network', 'br0')).toBe(2);
    expect(g.stderr.text).toContain('give BRIDGE=NETWORK, e.g. br0=lan');
  });

  it('names a file it cannot read', async () => {
    const f = fake({ cwd: fixtures });
    expect(await f.run('convert', 'nope.xml')).toBe(1);
    expect(f.stderr.text).toBe('virtq: INVALID_ARG: cannot read libvirt domain XML file nope.xml: no such file\n');
  });
});

describe('virtq define --from-libvirt-xml', () => {
  it('sends the converted definition to virtqemud', async () => {
    const f = fake({ cwd: fixtures, procs: { define: (a: Record<string, unknown>) => ({ name: (a['definition'] as { name: string }).name, state: 'shutoff' }) } });
    expect(await f.run('define', '--from-libvirt-xml', 'kernel-boot.xml')).toBe(0);
    expect(f.stdout.text).toBe("Domain 'kboot' defined from kernel-boot.xml\n");
    expect(f.calls).toMatchObject([{ proc: 'define', args: { definition: { name: 'kboot', kernel: { path: '/boot/guest/vmlinuz' }, onCrash: 'restart' } } }]);
  });

  it('refuses --lossy and --bridge-network on a JSON definition, calling nothing', async () => {
    const f = fake({ cwd: fixtures });
    expect(await f.run('define', 'minimal.xml', '--lossy')).toBe(1);
    expect(f.stderr.text).toBe('virtq: INVALID_ARG: --lossy and --bridge-network apply to a libvirt XML file: add --from-libvirt-xml\n');
    expect(f.calls).toEqual([]);
  });
});
