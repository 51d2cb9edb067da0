// Shell completion: the model derived from the command tree (kinds of every argument and option),
// the generated bash and zsh scripts run in real shells against a stub `virtq` that records the
// __complete calls, and the __complete helper's silence and deadline.
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { rmSync } from 'node:fs';
import { allCommands } from '../../../cli/program.js';
import { bashCompletion } from '../../../cli/completion/bash.js';
import { zshCompletion } from '../../../cli/completion/zsh.js';
import { DYNAMIC_KINDS, completionModel, parseFlags, type CompletionCommand } from '../../../cli/completion/model.js';
import { DEADLINE_MS, runComplete } from '../../../cli/completion/helper.js';
import type { RunContext } from '../../../cli/command.js';
import { FakeClock } from '../../helpers/fake-clock.js';

const model = completionModel(allCommands());
const byKey = (key: string): CompletionCommand => {
  const c = [...model.top, ...model.admin].find((x) => x.key === key);
  if (c === undefined) throw new Error(`no ${key}`);
  return c;
};
const optionKind = (key: string, flag: string): string | undefined => byKey(key).options.find((o) => o.names.includes(flag))?.value;

describe('completionModel', () => {
  it('lists the virtq commands, admin, help and the local commands, and admin\'s subcommands', () => {
    const top = model.top.map((c) => c.name);
    expect(top).toEqual(expect.arrayContaining(['list', 'start', 'pool-list', 'vol-info', 'secret-info', 'net-list', 'nodedev-info', 'convert', 'completion', 'admin', 'help']));
    expect(top).not.toContain('__complete');
    expect(model.admin.map((c) => c.key)).toEqual(expect.arrayContaining(['admin limits', 'admin log-filters', 'admin client-disconnect']));
  });

  it('gives each argument the kind of object it names', () => {
    const args = (key: string) => byKey(key).args;
    expect(args('start')).toEqual(['domain']);
    expect(args('define')).toEqual(['file']);
    expect(args('detach-disk')).toEqual(['domain', 'disk-target:@1']);
    expect(args('detach-interface')).toEqual(['domain', 'mac:@1']);
    expect(args('attach-disk')).toEqual(['domain', 'volume:--pool|file', 'none']);
    expect(args('pool-start')).toEqual(['pool']);
    expect(args('vol-info')).toEqual(['pool', 'volume:@1']);
    expect(args('vol-create-as')).toEqual(['pool', 'none', 'none']);
    expect(args('vol-clone')).toEqual(['pool', 'volume:@1', 'none']);
    expect(args('vol-upload')).toEqual(['pool', 'volume:@1', 'file']);
    expect(args('secret-info')).toEqual(['secret']);
    expect(args('net-dhcp-leases')).toEqual(['network']);
    expect(args('nodedev-info')).toEqual(['nodedev']);
    expect(args('completion')).toEqual(['=bash,zsh']);
    expect(args('help')).toEqual(['command']);
    expect(args('admin client-disconnect')).toEqual(['none']);
  });

  it('gives valued options their choices or kinds, and flags none', () => {
    expect(optionKind('attach-disk', '--format')).toBe('=raw,qcow2');
    expect(optionKind('attach-disk', '--pool')).toBe('pool');
    expect(optionKind('attach-disk', '--encrypt')).toBe('secret');
    expect(optionKind('attach-interface', '--network')).toBe('network');
    expect(optionKind('vol-create-as', '--backing-vol')).toBe('volume:--backing-vol-pool,@1');
    expect(optionKind('list', '--state')).toBe('=starting,running,paused,shutting-down,shutoff,crashed');
    expect(optionKind('list', '--all')).toBeUndefined();
    expect(optionKind('secret-set-value', '--file')).toBe('file');
    expect(parseFlags('-c, --connect <uri>')).toEqual({ names: ['-c', '--connect'], valued: true });
  });

  it('gives every argument and option a kind the scripts understand, whose context words exist', () => {
    const dynamic = new Set<string>(DYNAMIC_KINDS);
    for (const c of [...model.top, ...model.admin]) {
      const kinds = [...c.args, ...c.options.flatMap((o) => (o.value === undefined ? [] : [o.value]))];
      for (const kind of kinds.flatMap((k) => k.split('|'))) {
        if (['none', 'file', 'command'].includes(kind) || kind.startsWith('=')) continue;
        const [name, refs] = kind.split(':') as [string, string | undefined];
        expect(dynamic.has(name), `${c.key}: ${kind}`).toBe(true);
        for (const ref of refs?.split(',') ?? []) {
          if (ref.startsWith('@')) expect(Number(ref.slice(1)), `${c.key}: ${kind}`).toBeLessThanOrEqual(c.args.length);
          else expect(c.options.some((o) => o.names.includes(ref)), `${c.key}: ${kind}`).toBe(true);
        }
      }
    }
  });
});

// A stub `virtq` that records how the script called it and answers __complete from a table.
const dir = mkdtempSync(join(tmpdir(), 'vq-compl-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const stub = join(dir, 'virtq');
writeFileSync(stub, `#!/bin/sh
echo "$*" >> "${dir}/calls"
for a in "$@"; do last2=$last1; last1=$a; done
case "$*" in
  *"__complete domain") printf 'web1\\nweb2\\ndb1\\n' ;;
  *"__complete volume default") printf 'base.qcow2\\nweb1.qcow2\\n' ;;
  *"__complete volume other") printf 'o1\\n' ;;
  *"__complete disk-target web1") printf 'vda\\nvdb\\n' ;;
esac
`);
chmodSync(stub, 0o755);
writeFileSync(join(dir, 'virtq.bash'), bashCompletion(model));
writeFileSync(join(dir, 'virtq.zsh'), zshCompletion(model));

/** Completes `words` (the last one being completed) with the bash script; returns COMPREPLY and the stub's calls. */
function bash(words: string[]): { reply: string[]; calls: string[] } {
  writeFileSync(join(dir, 'calls'), '');
  const arr = [stub, ...words].map((w) => `'${w}'`).join(' ');
  const out = execFileSync('bash', ['-c', `source "${dir}/virtq.bash"; COMP_WORDS=(${arr}); COMP_CWORD=${words.length}; _virtq; printf '%s\\n' "\${COMPREPLY[@]}"`], { encoding: 'utf8', cwd: dir });
  return { reply: out.split('\n').filter((l) => l !== ''), calls: execFileSync('cat', [join(dir, 'calls')], { encoding: 'utf8' }).split('\n').filter((l) => l !== '') };
}

describe('the bash completion script', () => {
  it('is valid bash', () => {
    execFileSync('bash', ['-n', join(dir, 'virtq.bash')]);
  });

  it('completes commands, admin subcommands, options and literal choices without asking any daemon', () => {
    expect(bash(['sta'])).toEqual({ reply: ['start'], calls: [] });
    expect(bash(['admin', 'log-'])).toEqual({ reply: ['log-filters', 'log-outputs'], calls: [] });
    expect(bash(['attach-disk', '--f']).reply).toEqual(['--format']);
    expect(bash(['attach-disk', 'web1', '--format', '']).reply).toEqual(['raw', 'qcow2']);
    expect(bash(['list', '--state', 'sh']).reply).toEqual(['shutting-down', 'shutoff']);
    expect(bash(['--js']).reply).toEqual(['--json']);
    expect(bash(['help', 'vol-c']).reply).toEqual(['vol-create-as', 'vol-clone']);
    expect(bash(['completion', '']).reply).toEqual(['bash', 'zsh']);
  });

  it('asks __complete for names with the -c URI of the command line, whatever its place', () => {
    expect(bash(['-c', 'qemu:///system?root=/r', 'start', 'we'])).toEqual({ reply: ['web1', 'web2'], calls: ['-c qemu:///system?root=/r __complete domain'] });
    expect(bash(['start', '--paused', '-c', 'qemu:///session', ''])).toEqual({ reply: ['web1', 'web2', 'db1'], calls: ['-c qemu:///session __complete domain'] });
    expect(bash(['dominfo', '']).calls).toEqual(['__complete domain']);
  });

  it('passes the context a kind needs: the pool of a volume, the VM of a disk target', () => {
    expect(bash(['vol-info', 'default', 'w'])).toEqual({ reply: ['web1.qcow2'], calls: ['__complete volume default'] });
    expect(bash(['vol-create-as', 'default', 'new', '1G', '--backing-vol', '']).reply).toEqual(['base.qcow2', 'web1.qcow2']);
    expect(bash(['vol-create-as', 'default', 'new', '1G', '--backing-vol-pool', 'other', '--backing-vol', '']).reply).toEqual(['o1']);
    expect(bash(['detach-disk', 'web1', '']).reply).toEqual(['vda', 'vdb']);
    expect(bash(['attach-disk', 'web1', '--pool', 'default', 'b']).reply).toEqual(['base.qcow2']);
  });

  it('completes files where a file goes, and nothing where a new name goes', () => {
    writeFileSync(join(dir, 'web9.json'), '{}');
    expect(bash(['define', 'web9'])).toEqual({ reply: ['web9.json'], calls: [] });
    expect(bash(['vol-create-as', 'default', ''])).toEqual({ reply: [], calls: [] });
  });
});

/** Completes `words` with the zsh script, compadd and _files stubbed to print what they are given. */
function zsh(words: string[]): string[] {
  const arr = [stub, ...words].map((w) => `'${w}'`).join(' ');
  const script = `compadd() { while [[ $1 == -* && $1 != -- ]]; do [[ $1 == -d ]] && shift; shift; done; [[ $1 == -- ]] && shift; print -l -- "$@"; }
_files() { print -- '<files>'; }
source "${dir}/virtq.zsh"; words=(${arr}); CURRENT=${words.length + 1}; _virtq`;
  return execFileSync('zsh', ['-f', '-c', script], { encoding: 'utf8', cwd: dir }).split('\n').filter((l) => l !== '');
}

describe('the zsh completion script', () => {
  it('is valid zsh', () => {
    execFileSync('zsh', ['-n', join(dir, 'virtq.zsh')]);
  });

  it('offers commands, options and choices, and asks __complete for names in context', () => {
    expect(zsh(['sta'])).toEqual(model.top.map((c) => c.name));
    expect(zsh(['attach-disk', '--'])).toEqual(expect.arrayContaining(['--format', '--pool', '--json', '--connect']));
    expect(zsh(['attach-disk', 'web1', '--format', ''])).toEqual(['raw', 'qcow2']);
    expect(zsh(['-c', 'qemu:///session', 'start', ''])).toEqual(['web1', 'web2', 'db1']);
    expect(zsh(['vol-info', 'default', ''])).toEqual(['base.qcow2', 'web1.qcow2']);
    expect(zsh(['define', ''])).toEqual(['<files>']);
  });
});

describe('runComplete (virtq __complete)', () => {
  const ctxWith = (call: (proc: string, args: unknown) => Promise<unknown>, clock = new FakeClock()) => {
    let out = '';
    const conn = { call: (p: string, a: unknown) => call(p, a) };
    const ctx = {
      io: { clock, stdout: { write: (s: string) => { out += s; }, isTTY: false } },
      connect: async () => conn, connectProgram: async () => conn,
    } as unknown as RunContext;
    return { ctx, out: () => out, clock };
  };

  it('prints names one per line, sorted, and the pool\'s volumes for a volume', async () => {
    const w = ctxWith(async (proc, args) => (proc === 'listDomains' ? { domains: [{ name: 'b' }, { name: 'a' }] } : { volumes: [{ name: `v-${(args as { pool: string }).pool}` }] }));
    await runComplete(w.ctx, 'domain', undefined);
    await runComplete(w.ctx, 'volume', 'p1');
    expect(w.out()).toBe('a\nb\nv-p1\n');
  });

  it('prints nothing for an unknown kind, a failing daemon, or a volume without its pool', async () => {
    const w = ctxWith(async () => { throw new Error('ECONNREFUSED'); });
    await runComplete(w.ctx, 'domain', undefined);
    await runComplete(w.ctx, 'bogus', undefined);
    await runComplete(w.ctx, 'volume', undefined);
    expect(w.out()).toBe('');
  });

  it('gives up with nothing printed when a daemon does not answer within the deadline', async () => {
    const w = ctxWith(() => new Promise(() => undefined));
    const done = runComplete(w.ctx, 'pool', undefined);
    await w.clock.advance(DEADLINE_MS);
    await done;
    expect(w.out()).toBe('');
  });
});
