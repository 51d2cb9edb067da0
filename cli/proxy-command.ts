// `virtq proxy URI`: the far side of a `qemu+ssh://` connection (libvirt's virt-ssh-helper). ssh
// runs it as the logged-in user; it dials the local daemon socket the URI names (read-only with
// -r) and pipes ssh's stdio to it. Whatever stops it is reported on stdout as a typed error banner.
import { VirtqError, parseUri } from '../protocol/index.js';
import { errorBanner } from '../client/proxy-banner.js';
import { resolveSocket } from '../client/resolve.js';
import type { CommandSpec } from './command.js';

/** The local socket `uri` names (its read-only one with `readOnly`, its admin one with `admin`). */
export async function proxySocket(uri: string, opts: { readOnly: boolean; admin: boolean }, env: NodeJS.ProcessEnv): Promise<string> {
  let url: URL;
  try {
    url = new URL(uri);
  } catch {
    throw new VirtqError('INVALID_ARG', `not a URI: "${uri}" (expected qemu:///system or another local daemon URI)`);
  }
  if (opts.readOnly) url.searchParams.set('mode', 'ro');
  const target = parseUri(opts.readOnly ? url.href : uri, env);
  if (target.kind === 'ssh' || target.kind === 'embed') {
    throw new VirtqError('INVALID_ARG', `${uri}: virtq proxy dials a socket on this host; give a local URI such as qemu:///system`);
  }
  return (await resolveSocket(target, opts.admin ? 'admin' : 'api')).socket;
}

/** The `proxy` command. */
export function proxyCommand(): CommandSpec {
  return {
    name: 'proxy', program: 'virtq',
    description: 'Pipe stdin and stdout to the local daemon socket URI names: the far side of qemu+ssh:// (ssh runs it; not for interactive use).',
    arguments: [{ name: 'uri', description: 'a local daemon URI, e.g. qemu:///system or storage:///system?root=DIR', required: true }],
    options: [
      { flags: '-r, --readonly', key: 'readonly', description: 'dial the read-only socket (what ?readonly=1 in the ssh URI asks for)' },
      { flags: '--admin', key: 'admin', description: 'dial the daemon\'s admin socket' },
    ],
    output: undefined,
    outputNote: 'One banner line ("virtq-proxy {...}": connected, or the typed error), then the wire protocol as is.',
    run: async (ctx, input) => {
      try {
        const pipe = ctx.io.pipeStdio;
        if (pipe === undefined) throw new VirtqError('NOT_SUPPORTED', 'this virtq cannot pipe its standard input and output');
        const socket = await proxySocket(String(input.args['uri']), { readOnly: input.opts['readonly'] === true, admin: input.opts['admin'] === true }, ctx.io.env);
        await pipe(socket);
      } catch (err) {
        const e = VirtqError.from(err);
        ctx.io.stdout.write(errorBanner(e));
        throw e;
      }
    },
  };
}
