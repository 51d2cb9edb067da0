// The commander program: global options, one subcommand per CommandSpec (the `virtq` program's
// at the top, the admin program's under `virtq admin`), help texts from the catalogue. Parsing
// only: what a command does is in its spec, and run.ts turns outcomes into exit codes.
import { Command, InvalidArgumentError, Option } from 'commander';
import { adminProgram, parseUri, VirtqError } from '../protocol/index.js';
import { adminCommands } from './admin-commands.js';
import type { CommandSpec } from './command.js';
import type { Input } from './derive.js';
import { rootHelpText } from './help-text.js';
import type { Sink } from './io.js';
import { virtqCommands } from './vm-commands.js';
import { storageCommands } from './storage-commands.js';
import { secretCommands } from './secret-commands.js';
import { nodedevCommands } from './nodedev-commands.js';
import { networkCommands } from './network-commands.js';
import { completionCommand, convertCommand } from './local-commands.js';
import { EXAMPLES } from './examples.js';
import { helpAfterOptions } from './command-help.js';
import { runComplete } from './completion/helper.js';
import { proxyCommand } from './proxy-command.js';
import { pickCommand, picked, type CommandTree } from './command-pick.js';
import { fleetCommands } from './fleet-commands.js';
import { VERSION } from './version.js';

export { VERSION } from './version.js';

/** The global options as commander stores them. */
export interface GlobalOptions {
  connect?: string;
  json?: boolean;
}

/** What the program needs to be built. */
export interface ProgramSetup {
  readonly env: NodeJS.ProcessEnv;
  readonly stdout: Sink;
  readonly stderr: Sink;
  /** Help text width (fixed for the generated docs). */
  readonly width: number;
  /** Runs a parsed command. */
  execute(spec: CommandSpec, input: Input, globals: GlobalOptions): Promise<void>;
  /** The command specs (default: commandTree()); a startup snapshot passes the ones it holds. */
  readonly commands?: CommandTree;
  /** The command line about to be parsed: only the command it names is registered (default: all). */
  readonly argv?: readonly string[];
}

/** The command specs the program is built from. */
export function commandTree(): CommandTree {
  return { top: topCommands(), admin: withExamples(adminCommands(), 'admin ') };
}

/** Every command, `virtq` ones first, then the admin ones. */
export function allCommands(): CommandSpec[] {
  return [...topCommands(), ...withExamples(adminCommands(), 'admin ')];
}

/** The commands run as `virtq NAME`: VMs, then storage, secrets, networks and host devices, then those that call no daemon. */
function topCommands(): CommandSpec[] {
  return withExamples([
    ...virtqCommands(), ...storageCommands(), ...secretCommands(), ...networkCommands(), ...nodedevCommands(),
    convertCommand(), completionCommand(allCommands), proxyCommand(), ...fleetCommands(),
  ], '');
}

function withExamples(specs: CommandSpec[], prefix: string): CommandSpec[] {
  return specs.map((s) => {
    const examples = EXAMPLES[`${prefix}${s.name}`];
    return examples === undefined ? s : { ...s, examples };
  });
}

function addCommand(parent: Command, spec: CommandSpec, setup: ProgramSetup): Command {
  const cmd = parent.command(spec.name).description(spec.description);
  for (const a of spec.arguments) {
    const usage = a.required ? `<${a.name}>` : `[${a.name}]`;
    if (a.parse === undefined) cmd.argument(usage, a.description);
    else cmd.argument(usage, a.description, a.parse);
  }
  for (const o of spec.options) {
    const opt = new Option(o.flags, o.description);
    if (o.choices !== undefined) opt.choices(o.choices);
    if (o.parse !== undefined) opt.argParser(o.parse);
    cmd.addOption(opt);
  }
  // Built when help is shown: the output types' text costs tens of ms for all commands at once.
  cmd.addHelpText('after', () => helpAfterOptions(spec));
  cmd.action(async (...params: unknown[]) => {
    const self = params[params.length - 1] as Command;
    const args: Record<string, unknown> = {};
    spec.arguments.forEach((a, i) => { args[a.name] = self.processedArgs[i]; });
    await setup.execute(spec, { args, opts: self.opts() }, self.optsWithGlobals<GlobalOptions>());
  });
  return cmd;
}

// `virtq __complete KIND [CONTEXT]`: hidden, for the completion scripts (cli/completion/helper.ts).
function addCompleteHelper(program: Command, setup: ProgramSetup): void {
  const spec: CommandSpec = {
    name: '__complete', program: 'virtq', description: 'names for shell completion', arguments: [], options: [], output: undefined,
    run: async (ctx, input) => runComplete(ctx, String(input.args['kind']), input.args['context'] as string | undefined),
  };
  program.command('__complete', { hidden: true }).argument('<kind>').argument('[context]').action(async (kind: string, context: string | undefined, _o: unknown, self: Command) => {
    await setup.execute(spec, { args: { kind, context }, opts: {} }, self.optsWithGlobals<GlobalOptions>());
  });
}

/** Builds the whole command tree. */
export function buildProgram(setup: ProgramSetup): Command {
  const program = new Command('virtq')
    .description('Manage QEMU virtual machines run by virtq: one shim per VM, one virtqemud per host.')
    .version(VERSION, '-V, --version', 'print the version')
    .addOption(new Option('-c, --connect <uri>', 'connection URI (default: $VIRTQ_DEFAULT_URI, else uri_default in ~/.config/virtq/client.json, else qemu:///session, or qemu:///system as root)').argParser((v: string) => {
      try {
        // A fleet (`virtq -c cluster:///?etcd=...&prefix=P fleet`) is read by the fleet commands themselves.
        if (v.startsWith('cluster:')) return v;
        parseUri(v, setup.env);
        return v;
      } catch (err) {
        throw new InvalidArgumentError(VirtqError.from(err).message);
      }
    }))
    .option('--json', 'print the result as JSON (one document; event prints one line per event)')
    .helpOption('-h, --help', 'show help')
    .helpCommand('help [command]', 'show help for a command')
    .configureHelp({ showGlobalOptions: true, helpWidth: setup.width })
    .exitOverride()
    .configureOutput({
      writeOut: (s) => setup.stdout.write(s),
      writeErr: (s) => setup.stderr.write(s),
      outputError: (s, write) => write(`virtq: ${s.replace(/^error: /, '')}`),
    })
    .showSuggestionAfterError(true)
    .addHelpText('after', rootHelpText());
  const tree = setup.commands ?? commandTree();
  const pick = setup.argv === undefined ? { kind: 'all' as const } : pickCommand(setup.argv, tree);
  for (const spec of tree.top) if (picked(pick, spec.name)) addCommand(program, spec, setup);
  if (picked(pick, 'admin')) {
    const admin = program.command('admin').description(`${adminProgram.description} Connects to the admin socket of the daemon or shim that -c names.`);
    for (const spec of tree.admin) addCommand(admin, spec, setup);
  }
  if (picked(pick, '__complete')) addCompleteHelper(program, setup);
  return program;
}
