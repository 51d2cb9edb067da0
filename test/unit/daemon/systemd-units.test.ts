// The generated systemd units: one service and three sockets per daemon of services.ts, at the
// contract socket paths, with the settings that make them safe (KillMode=process so a stopped
// daemon leaves its shims and VMs alone; Restart=on-failure; socket activation by name).
import { describe, expect, it } from 'vitest';
import { systemdUnits, type UnitFile } from '../../../daemon/systemd-units.js';
import { DAEMONS, DAEMON_NAMES, serviceSockets, systemLayout } from '../../../protocol/index.js';

/** A unit file as section -> key -> values (a key may repeat). */
function parseUnit(text: string): Record<string, Record<string, string[]>> {
  const out: Record<string, Record<string, string[]>> = {};
  let section: Record<string, string[]> | undefined;
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const head = /^\[(\w+)\]$/.exec(line);
    if (head !== null) {
      section = out[head[1] as string] = {};
      continue;
    }
    const eq = line.indexOf('=');
    expect(section, `key outside a section: ${line}`).toBeDefined();
    expect(eq, `not key=value: ${line}`).toBeGreaterThan(0);
    (section as Record<string, string[]>)[line.slice(0, eq)] = [...((section as Record<string, string[]>)[line.slice(0, eq)] ?? []), line.slice(eq + 1)];
  }
  return out;
}

describe('systemdUnits', () => {
  const units = systemdUnits({ binDir: '/usr/local/bin', nodeDir: '/opt/node/bin' });
  const unit = (name: string): Record<string, Record<string, string[]>> => parseUnit((units.find((u) => u.name === name) as UnitFile).text);

  it('has a service and read-write, read-only and admin sockets for every daemon of services.ts', () => {
    expect(parseUnit((systemdUnits({ binDir: '/usr/bin', nodeDir: '/usr/bin' })[0] as UnitFile).text)['Service']?.['Environment']?.[0]).toBe('PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin');
    expect(units.map((u) => u.name)).toEqual(DAEMON_NAMES.flatMap((d) => [`${d}.service`, `${d}.socket`, `${d}-ro.socket`, `${d}-admin.socket`]));
    expect(DAEMON_NAMES).toEqual(['virtqemud', 'virtstoraged', 'virtsecretd', 'virtnetworkd', 'virtnodedevd']);
  });

  it.each(DAEMON_NAMES)('runs %s so that stopping it never kills what it started, restarting it on failure', (d) => {
    const svc = unit(`${d}.service`);
    const sockets = `${d}.socket ${d}-ro.socket ${d}-admin.socket`;
    expect(svc['Service']).toMatchObject({
      ExecStart: [`/usr/local/bin/${d} --system $${d.toUpperCase()}_ARGS`],
      KillMode: ['process'], Restart: ['on-failure'], Type: ['exec'],
      EnvironmentFile: [`-/etc/default/${d}`],
    });
    expect(svc['Service']?.['Environment']?.[0]).toMatch(/^PATH=\/opt\/node\/bin:/);
    expect(svc['Unit']).toMatchObject({ Description: [`virtq daemon for ${DAEMONS[d].serves} (${d})`], Requires: [sockets] });
    expect(svc['Unit']?.['After']).toContain(sockets);
    expect(svc['Install']).toEqual({ WantedBy: ['multi-user.target'], Also: [sockets] });
  });

  it.each(DAEMON_NAMES)('listens for %s at the contract paths under /run/virtq, each socket named for its class', (d) => {
    const paths = serviceSockets(systemLayout(), d);
    for (const [cls, name, mode] of [['rw', `${d}.socket`, '0600'], ['ro', `${d}-ro.socket`, '0666'], ['admin', `${d}-admin.socket`, '0600']] as const) {
      const s = unit(name);
      expect(s['Socket'], name).toEqual({
        ListenStream: [paths[cls]], SocketMode: [mode], DirectoryMode: ['0755'], FileDescriptorName: [cls], Service: [`${d}.service`], RemoveOnStop: ['yes'],
      });
      expect(s['Unit']?.['Before']).toEqual([`${d}.service`]);
      expect(s['Unit']?.['BindsTo']).toEqual(cls === 'rw' ? undefined : [`${d}.socket`]);
      expect(s['Install']).toEqual({ WantedBy: ['sockets.target'] });
    }
    expect(paths.rw).toBe(`/run/virtq/${d}.sock`);
  });
});
