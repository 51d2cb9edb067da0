// Commands that call no daemon: `convert` (a libvirt domain XML as a virtq definition) and
// `completion` (the shell completion scripts, generated from the command tree they complete).
import { InvalidArgumentError } from 'commander';
import { Definition } from '../protocol/index.js';
import type { CommandSpec } from './command.js';
import { bashCompletion } from './completion/bash.js';
import { completionModel } from './completion/model.js';
import { zshCompletion } from './completion/zsh.js';
import { LIBVIRT_OPTIONS, readLibvirtDefinition } from './libvirt-file.js';

/** `virtq convert FILE`: prints the virtq definition of a libvirt domain XML. */
export function convertCommand(): CommandSpec {
  return {
    name: 'convert', program: 'virtq',
    description: 'Print the virtq definition (JSON) of a libvirt domain XML file, as define --from-libvirt-xml would define it.',
    arguments: [{ name: 'file', description: 'a libvirt domain XML (virsh dumpxml NAME); relative paths in it resolve against its directory', required: true }],
    options: LIBVIRT_OPTIONS,
    output: Definition,
    notes: [
      'Carried over: name, uuid, memory and currentMemory (any libvirt unit, whole MiB), vcpu, os type/machine/kernel/initrd/cmdline,',
      'cpu mode (host-passthrough -> host, maximum -> max, custom -> its model), disks of type file, block and volume (raw or qcow2,',
      'virtio or ide, readonly, shareable, LUKS qcow2 with its secret), interfaces of type user, network, bridge (with',
      '--bridge-network) and ethernet (an existing tap) with their MAC, on_poweroff/on_reboot/on_crash, the emulator.',
      'Anything else makes the command fail, listing each element path and why (INVALID_ARG, the list in its details), unless',
      '--lossy is given: then each is printed on stderr as "virtq: warning: left out PATH: why". See docs/guide-libvirt.md.',
    ].join('\n'),
    run: async (ctx, input) => {
      const definition = await readLibvirtDefinition(String(input.args['file']), ctx.io.cwd, input.opts, ctx.io.stderr);
      ctx.printJson(definition);
    },
  };
}

/** `virtq completion SHELL`: prints the completion script. */
export function completionCommand(commands: () => readonly CommandSpec[]): CommandSpec {
  return {
    name: 'completion', program: 'virtq',
    description: 'Print the shell completion script for bash or zsh: commands, options, their choices, and names of VMs, pools, volumes, networks, secrets and host devices asked of the daemons.',
    arguments: [{
      name: 'shell', description: 'bash or zsh', required: true,
      parse: (v: string) => { if (v !== 'bash' && v !== 'zsh') throw new InvalidArgumentError('give bash or zsh'); return v; },
    }],
    options: [],
    output: undefined,
    outputNote: '`--json` has no effect: it prints a shell script.',
    notes: [
      'bash: source <(virtq completion bash)   (or save it as /usr/share/bash-completion/completions/virtq)',
      'zsh:  source <(virtq completion zsh)    after compinit (or save it as _virtq in a directory of $fpath)',
      'Names come from the daemons the command line\'s -c URI names (else the default URI), through the hidden',
      '`virtq __complete KIND`; a daemon that does not answer within 1.5 s adds nothing.',
    ].join('\n'),
    run: async (ctx, input) => {
      const model = completionModel(commands());
      ctx.print(input.args['shell'] === 'zsh' ? zshCompletion(model) : bashCompletion(model));
    },
  };
}
