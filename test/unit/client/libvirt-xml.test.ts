// The libvirt domain XML converter on the project's own fixtures (test/fixtures/libvirt/, written
// after the shapes of libvirt's test suite and of `virsh dumpxml`): what carries over, exactly,
// and for the rejects the exact list of what does not, each with its element path.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { convertLibvirtXml, unitBytes, type LibvirtConvertOptions } from '../../../client/libvirt/domain.js';
import { VirtqError } from '../../../protocol/index.js';

const fixture = (name: string): string => readFileSync(new URL(`../../fixtures/libvirt/${name}`, import.meta.url), 'utf8');
const convert = (name: string, opts: LibvirtConvertOptions = {}) => convertLibvirtXml(fixture(name), { source: name, baseDir: '/base', ...opts });

/** The `path: reason` list of a failed conversion (and checks that it failed as INVALID_ARG). */
function rejected(name: string, opts: LibvirtConvertOptions = {}): string[] {
  try {
    convert(name, opts);
  } catch (err) {
    const e = err as VirtqError;
    expect(e).toBeInstanceOf(VirtqError);
    expect(e.code).toBe('INVALID_ARG');
    return (e.details?.['leftOut'] as { path: string; reason: string }[]).map((l) => `${l.path}: ${l.reason}`);
  }
  throw new Error(`${name} was converted`);
}

const ADDRESS = 'virtq places devices itself (PCI slot, IDE unit from the target name): the guest may see this one at another address';

describe('convertLibvirtXml: accepted domains', () => {
  it('converts a minimal domain: name, uuid, KiB memory, one raw virtio disk, BIOS boot from it', () => {
    expect(convert('minimal.xml')).toEqual({
      definition: {
        name: 'small1', uuid: '0b1c5f0e-6d2a-4c33-9f7e-2a51d8e4c101', memoryMiB: 256, vcpus: 1, machine: 'pc-i440fx-8.2', accel: 'kvm',
        disks: [{ path: '/srv/images/small1.img', format: 'raw', bus: 'virtio', target: 'vda' }],
      },
      leftOut: [],
    });
  });

  it('converts kernel boot, a running domain\'s dumpxml noise, the board\'s own devices and lifecycle actions', () => {
    expect(convert('kernel-boot.xml').definition).toEqual({
      name: 'kboot', uuid: '5e0d2b8a-91c4-4f7f-a3c6-e5d4b2a19087', memoryMiB: 512, vcpus: 2, machine: 'pc', accel: 'tcg', cpu: 'host',
      emulator: '/usr/bin/qemu-system-x86_64',
      kernel: { path: '/boot/guest/vmlinuz', initrd: '/boot/guest/initrd.img', cmdline: 'console=ttyS0 root=/dev/vda rw' },
      disks: [{ path: '/srv/images/kboot.qcow2', format: 'qcow2', bus: 'virtio', target: 'vda' }],
      onPoweroff: 'preserve', onReboot: 'destroy', onCrash: 'restart',
    });
  });

  it('converts file, block and volume disks with their bus, format, readonly, shareable and LUKS secret; GiB memory; a CPU model', () => {
    expect(convert('disks.xml').definition).toEqual({
      name: 'db-1', memoryMiB: 2048, vcpus: 4, machine: 'pc-i440fx-7.2', accel: 'kvm', cpu: 'Skylake-Server',
      disks: [
        { path: '/var/lib/vms/db-1/root.qcow2', format: 'qcow2', bus: 'virtio', target: 'vda' },
        { source: { pool: 'fast', volume: 'db-1-data.qcow2' }, format: 'qcow2', bus: 'virtio', target: 'vdb' },
        { path: '/dev/vg0/db-1-wal', format: 'raw', bus: 'virtio', target: 'vdc', shareable: true },
        { path: '/base/seed.img', bus: 'ide', target: 'hdb', readonly: true },
        { path: '/var/lib/vms/db-1/secret.qcow2', format: 'qcow2', bus: 'virtio', target: 'vdd', encryption: { secret: 'c1a5e3f2-1b4d-4e6f-8a9b-0c1d2e3f4a5b' } },
      ],
    });
  });

  it('converts user, network, mapped bridge and tap interfaces with their MACs (lower-cased) on q35', () => {
    expect(convert('interfaces.xml', { bridgeNetworks: { br0: 'lan' } }).definition).toEqual({
      name: 'edge', uuid: '9d8c7b6a-5f4e-4d3c-8b2a-1f0e9d8c7b6a', memoryMiB: 1024, vcpus: 2, machine: 'pc-q35-8.2', accel: 'kvm',
      kernel: { path: '/boot/edge/vmlinuz' },
      interfaces: [
        { type: 'user', mac: '52:54:00:0a:00:01' },
        { type: 'network', network: 'default', mac: '52:54:00:0a:00:02' },
        { type: 'network', network: 'lan' },
        { type: 'tap', ifname: 'tap-edge', mac: '52:54:00:0a:00:04' },
      ],
      onPoweroff: 'destroy', onReboot: 'restart', onCrash: 'preserve',
    });
  });

  it('reads libvirt\'s units: KiB by default, KB and MB decimal, k/M/G binary, bytes', () => {
    expect([undefined, 'KiB', 'k', 'KB', 'M', 'MiB', 'MB', 'G', 'GiB', 'GB', 'TiB', 'b', 'bytes'].map(unitBytes)).toEqual([
      1024n, 1024n, 1024n, 1000n, 1048576n, 1048576n, 1000000n, 1073741824n, 1073741824n, 1000000000n, 1099511627776n, 1n, 1n,
    ]);
    expect(unitBytes('furlongs')).toBeUndefined();
    expect(unitBytes('KiBB')).toBeUndefined();
  });
});

describe('convertLibvirtXml: rejects, with the exact list', () => {
  it('lists a desktop guest\'s display, sound, USB, tablet, balloon, channel, addresses and tuning', () => {
    expect(rejected('desktop-graphics.xml')).toEqual([
      '/domain/features/vmport: virtq sets no <vmport> feature: QEMU\'s default for the machine applies',
      '/domain/cpu/@mode: virtq has no host-model CPU: give a named model (<model>) or host-passthrough; QEMU\'s default CPU would be used',
      '/domain/clock/timer[0]: virtq sets no timer policy: QEMU\'s defaults apply',
      '/domain/clock/timer[1]: virtq sets no timer policy: QEMU\'s defaults apply',
      '/domain/devices/disk[0]/driver/@cache: virtq sets no cache mode: QEMU\'s default (writeback) applies',
      `/domain/devices/disk[0]/address: ${ADDRESS}`,
      '/domain/devices/controller[0]: virtq gives the guest no USB controller (QEMU runs with -nodefaults)',
      `/domain/devices/interface[0]/address: ${ADDRESS}`,
      '/domain/devices/channel[0]: virtq gives the guest no channels (guest agent, SPICE agent)',
      '/domain/devices/input[0]: virtq gives the guest no input devices beyond the PS/2 keyboard and mouse of the PC board',
      '/domain/devices/graphics[0]: virtq has no graphical console (VNC, SPICE, SDL): its guests have a serial console only (virtq console)',
      '/domain/devices/sound[0]: virtq gives the guest no sound device',
      '/domain/devices/video[0]: virtq starts QEMU with no display device (-display none, -nodefaults)',
      '/domain/devices/memballoon[0]: virtq gives the guest no balloon device (QEMU runs with -nodefaults)',
    ]);
  });

  it('with lossy, leaves those out and keeps what carries over', () => {
    const r = convert('desktop-graphics.xml', { lossy: true });
    expect(r.definition).toEqual({
      name: 'desk', uuid: '3f2e1d0c-b9a8-4776-8554-433221100fed', memoryMiB: 4096, vcpus: 2, machine: 'pc-i440fx-6.2', accel: 'kvm',
      emulator: '/usr/bin/qemu-system-x86_64',
      disks: [{ path: '/var/lib/libvirt/images/desk.qcow2', format: 'qcow2', bus: 'virtio', target: 'vda' }],
      interfaces: [{ type: 'network', network: 'default', mac: '52:54:00:7d:11:22' }],
    });
    expect(r.leftOut.map((l) => l.path)).toEqual(rejected('desktop-graphics.xml').map((l) => l.slice(0, l.indexOf(': '))));
  });

  it('lists USB host devices, a redirected device and the USB controller', () => {
    expect(rejected('usb-hostdev.xml')).toEqual([
      '/domain/devices/hostdev[0]: virtq passes no host device through to a guest (virtnodedevd only lists host devices)',
      '/domain/devices/hostdev[1]: virtq passes no host device through to a guest (virtnodedevd only lists host devices)',
      '/domain/devices/redirdev[0]: virtq redirects no USB devices to the guest',
      '/domain/devices/controller[0]: virtq gives the guest no USB controller (QEMU runs with -nodefaults)',
    ]);
  });

  it('lists NUMA placement, guest NUMA cells, pinning and topology', () => {
    expect(rejected('numa.xml')).toEqual([
      '/domain/vcpu/@cpuset: virtq does not pin vCPUs to host CPUs',
      '/domain/cputune: virtq does not pin, weight or throttle vCPUs or QEMU threads',
      '/domain/numatune: virtq gives guest memory no NUMA placement: it goes where the host kernel puts it',
      '/domain/cpu/topology: virtq gives QEMU a vCPU count only (-smp N): QEMU picks sockets, cores and threads',
      '/domain/cpu/numa: virtq gives the guest no NUMA cells',
    ]);
  });

  it('lists hugepages, memory hot-plug, a balloon target below memory and automatic vCPU placement', () => {
    expect(rejected('hugepages.xml')).toEqual([
      '/domain/maxMemory: virtq has no memory hot-plug: the guest gets <memory> at start and no more',
      '/domain/currentMemory: virtq has no balloon: the guest would get all of its 1024 MiB, not 512 MiB',
      '/domain/memoryBacking: virtq backs guest memory with ordinary host memory: no hugepages, locking, sharing or file backing',
      '/domain/vcpu/@placement: virtq does not place vCPUs: the host scheduler does',
    ]);
  });

  it('lists disks of unsupported types, devices, buses and formats, empty drives, and disk tuning', () => {
    expect(rejected('disks-unsupported.xml')).toEqual([
      '/domain/os/boot[0]: virtq boots a kernel or the first disk, not "cdrom"',
      '/domain/devices/disk[0]: virtq\'s disks are image files, block devices or virtstoraged volumes, not type \'network\'',
      '/domain/devices/disk[1]: virtq\'s disks are hard disks: a cdrom is not carried over',
      '/domain/devices/disk[2]: virtq\'s disks are on the virtio or ide bus, not scsi',
      '/domain/devices/disk[3]: virtq\'s disks are on the virtio or ide bus, not sata',
      '/domain/devices/disk[4]: virtq\'s disks are hard disks: a floppy is not carried over',
      '/domain/devices/disk[5]: virtq reads raw and qcow2 images, not vmdk',
      '/domain/devices/disk[6]: a disk without a source (an empty drive) is not carried over',
      '/domain/devices/disk[7]/driver/@discard: virtq always passes discards to the image (discard=unmap)',
      '/domain/devices/disk[7]/driver/@cache: virtq sets no cache mode: QEMU\'s default (writeback) applies',
      '/domain/devices/disk[7]/driver/@io: virtq sets no AIO mode: QEMU\'s default (threads) applies',
      '/domain/devices/disk[7]/serial: virtq gives its disks no serial number',
      '/domain/devices/disk[7]/boot: virtq has no per-device boot order: a guest without a kernel boots from its first disk',
      '/domain/devices/controller[0]: virtq adds no scsi controller: only the machine\'s own',
    ]);
    // The tuned disk itself carries over.
    expect(convert('disks-unsupported.xml', { lossy: true }).definition.disks).toEqual([{ path: '/srv/odd/tuned.img', format: 'raw', bus: 'virtio', target: 'vdd' }]);
  });

  it('lists a bridge no network stands for, macvtap, libvirt\'s default NIC model, e1000 and port forwarding', () => {
    expect(rejected('interfaces-unsupported.xml')).toEqual([
      '/domain/devices/interface[0]: virtq has no bridge interface: define a virtnetworkd network of mode bridge on br-lan (virtq net-define) and convert with --bridge-network br-lan=NETWORK',
      '/domain/devices/interface[1]: virtq\'s interfaces are user, network (virtnetworkd), bridge through a virtnetworkd network, or an existing tap (ethernet), not \'direct\'',
      '/domain/devices/interface[2]: no <model>: libvirt gives this NIC its default model (rtl8139 or e1000); virtq\'s NICs are virtio-net',
      '/domain/devices/interface[3]/model/@type: virtq\'s NICs are virtio-net, not e1000',
      '/domain/devices/interface[4]/portForward: virtq\'s user networking forwards no ports',
    ]);
    expect(convert('interfaces-unsupported.xml', { bridgeNetworks: { 'br-lan': 'lan' }, lossy: true }).definition.interfaces).toEqual([
      { type: 'network', network: 'lan', mac: '52:54:00:aa:00:01' },
      { type: 'network', network: 'default' },
      { type: 'network', network: 'default' },
      { type: 'user' },
    ]);
  });

  it('lists lifecycle actions virtq lacks, local time and UEFI', () => {
    expect(rejected('lifecycle-unsupported.xml')).toEqual([
      '/domain/os/@firmware: virtq boots QEMU\'s default firmware (SeaBIOS): UEFI is not carried over',
      '/domain/os/loader: virtq boots QEMU\'s default firmware (SeaBIOS): UEFI firmware is not carried over',
      '/domain/clock/@offset: virtq keeps the guest\'s clock in UTC (QEMU\'s default), not localtime',
      '/domain/on_reboot: virtq\'s actions are destroy, restart and preserve, not "rename-restart"',
      '/domain/on_crash: virtq\'s actions are destroy, restart and preserve, not "coredump-destroy"',
    ]);
  });

  it('lists memory that is no whole number of MiB; lossy rounds it up (currentMemory in KB is the same size)', () => {
    expect(rejected('memory-units.xml')).toEqual(['/domain/memory: 1000000000 bytes is not a whole number of MiB: virtq would give the guest 954 MiB']);
    expect(convert('memory-units.xml', { lossy: true }).definition).toEqual({ name: 'decimal', memoryMiB: 954, accel: 'tcg' });
  });

  it('fails even when lossy when no definition can be made, naming every reason', () => {
    const fatal = ['/domain/@type: virtq runs QEMU guests with KVM or TCG (type kvm or qemu), not "xen"',
      '/domain/name: "my guest" is not a virtq VM name: 1 to 64 letters, digits, \'.\', \'_\', \'+\' or \'-\', not starting with \'.\' or \'-\'',
      '/domain/memory: virtq gives a guest 16 MiB to 4 TiB, not 8 MiB',
      '/domain/os/type: virtq runs fully virtualised (hvm) QEMU guests, not "linux"',
      '/domain/os/type/@arch: virtq runs x86_64 guests (qemu-system-x86_64), not aarch64'];
    expect(rejected('fatal.xml')).toEqual(fatal);
    expect(rejected('fatal.xml', { lossy: true })).toEqual(fatal);
    expect(() => convert('fatal.xml', { lossy: true })).toThrow(/^fatal\.xml: no virtq definition can be made from this libvirt domain: \/domain\/@type: /);
  });

  it('says in one message how many parts cannot be carried over and that --lossy leaves them out', () => {
    expect(() => convert('usb-hostdev.xml')).toThrow(/^usb-hostdev\.xml: 4 parts of this libvirt domain cannot be carried over to virtq \(--lossy leaves them out\): \/domain\/devices\/hostdev\[0\]: /);
  });

  it('refuses what is not a libvirt domain: bad XML, another root, an entity it would have to fetch, a missing memory', () => {
    expect(() => convertLibvirtXml('<domain><name>a</name>', { source: 'f.xml' })).toThrow(/^f\.xml is not well-formed XML: error: unclosed xml tag/);
    expect(() => convertLibvirtXml('<network><name>a</name></network>', { source: 'n.xml' })).toThrow('n.xml: the root element is <network>, not a libvirt <domain>');
    expect(() => convertLibvirtXml('<!DOCTYPE domain [<!ENTITY x SYSTEM "file:///etc/passwd">]><domain type="kvm"><name>&x;</name></domain>', { source: 'e.xml' }))
      .toThrow(/^e\.xml is not well-formed XML: error: entity not found/);
    expect(() => convertLibvirtXml('<domain type="kvm"><name>a</name><os><type>hvm</type></os></domain>', { source: 'm.xml' }))
      .toThrow('m.xml: no virtq definition can be made from this libvirt domain: /domain/memory: a domain needs its memory size');
  });
});
