// The commands that stream: `console` (the serial console, interactive on a TTY with Ctrl-] to
// leave, else a pipe from stdin to the guest and from the guest to stdout) and `event`
// (lifecycle events, one line each). Both are built on their catalogue procedures.
import { VirtqError, virtqProgram, type Disposable } from '../protocol/index.js';
import { callCommand, type CommandSpec, type RunContext } from './command.js';
import { numberParser, type Input } from './derive.js';
import { EventLine } from './json-output.js';
import { parseSince } from './event-history.js';

/** Ctrl-]: leaves an interactive console. */
const ESCAPE = 0x1d;
/** After stdin ends, the console waits for the guest's output to pause this long... */
const QUIET_MS = 500;
/** ...but no longer than this. */
const LINGER_MAX_MS = 5000;

const timeoutOption = (what: string) => ({
  flags: '--timeout <seconds>', key: 'timeout', description: what,
  parse: numberParser('--timeout', { type: 'number', minimum: 0, maximum: 86_400 }),
});

async function runConsole(ctx: RunContext, input: Input): Promise<void> {
  const { io } = ctx;
  const name = String(input.args['name']);
  const timeoutSec = input.opts['timeout'] as number | undefined;
  const conn = await ctx.connect();
  const stream = await conn.console(name);
  const interactive = io.stdin.isTTY;
  if (interactive) io.stderr.write(`Connected to domain '${name}'\nEscape character is ^] (Ctrl-])\n`);
  await new Promise<void>((resolveDone, rejectDone) => {
    const timers: Disposable[] = [];
    let finished = false;
    let inputEnded = false;
    let quiet: Disposable | undefined;
    const finish = (err?: VirtqError): void => {
      if (finished) return;
      finished = true;
      quiet?.dispose();
      for (const t of timers) t.dispose();
      if (interactive) io.stdin.setRawMode?.(false);
      io.stdin.pause();
      stream.end();
      if (err === undefined) resolveDone(); else rejectDone(err);
    };
    const settleSoon = (): void => {
      quiet?.dispose();
      quiet = io.clock.setTimeout(() => finish(), QUIET_MS);
    };
    void (async () => {
      for await (const chunk of stream) {
        io.stdout.write(chunk);
        if (inputEnded && timeoutSec === undefined) settleSoon();
      }
      // The VM stopping closes the console: the session is over, not failed.
      const e = stream.error;
      finish(e === undefined || e.code === 'CONNECTION_CLOSED' ? undefined : VirtqError.fromWire(e));
    })();
    if (timeoutSec !== undefined) timers.push(io.clock.setTimeout(() => finish(), timeoutSec * 1000));
    if (interactive) io.stdin.setRawMode?.(true);
    io.stdin.on('data', (chunk) => {
      const buf = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
      const escape = interactive ? buf.indexOf(ESCAPE) : -1;
      if (escape < 0) { stream.write(buf); return; }
      if (escape > 0) stream.write(buf.subarray(0, escape));
      finish();
    });
    io.stdin.on('end', () => {
      inputEnded = true;
      if (timeoutSec !== undefined) return;
      settleSoon();
      timers.push(io.clock.setTimeout(() => finish(), LINGER_MAX_MS));
    });
    io.stdin.resume();
  });
  if (interactive) io.stderr.write('\n');
}

/** `console NAME [--timeout S]`: the VM's serial console. */
export function consoleCommand(): CommandSpec {
  const spec = callCommand(virtqProgram, 'openConsole', {
    options: [timeoutOption('leave after this many seconds')],
    notes: 'On a terminal the console is interactive: keys go to the guest in raw mode and Ctrl-] leaves.\n' +
      'Otherwise stdin is sent to the guest and the guest\'s output (recent history first) goes to stdout;\n' +
      'the command ends when stdin ends and the guest has been quiet for 0.5 s (5 s at most), when\n' +
      '--timeout passes (stdin ending then does not end it), or when the VM stops. The VM keeps running.',
    run: runConsole,
  });
  return { ...spec, output: undefined };
}

async function runEvent(ctx: RunContext, input: Input): Promise<void> {
  const name = input.args['name'] as string | undefined;
  const loop = input.opts['loop'] === true;
  const timeoutSec = input.opts['timeout'] as number | undefined;
  const sinceText = input.opts['since'] as string | undefined;
  const since = sinceText === undefined ? {} : parseSince(sinceText);
  if ('since' in since && name === undefined) throw new VirtqError('INVALID_ARG', '--since with a sequence number needs a VM name (sequence numbers count per VM); for every VM give a time');
  const conn = await ctx.connect();
  const events = await conn.events({ ...(name === undefined ? {} : { name }), ...since });
  let timedOut = false;
  const timer = timeoutSec === undefined ? undefined : ctx.io.clock.setTimeout(() => {
    timedOut = true;
    void events.return?.();
  }, timeoutSec * 1000);
  let count = 0;
  try {
    for (;;) {
      const r = await events.next();
      if (r.done === true) break;
      count++;
      const ev = r.value;
      if (ctx.json) ctx.printJson(ev, true);
      else ctx.print(`event 'lifecycle' for domain '${ev.name}': ${ev.event} (state ${ev.state}, reason ${ev.reason})\n`);
      if (!loop) break;
    }
  } finally {
    timer?.dispose();
  }
  if (count === 0 && !timedOut) throw new VirtqError('CONNECTION_CLOSED', 'the connection closed before any event arrived');
  if (loop && !ctx.json) ctx.print(`events received: ${count}\n`);
}

/** `event [NAME] [--loop] [--timeout S]`: waits for lifecycle events. */
export function eventCommand(): CommandSpec {
  return callCommand(virtqProgram, 'subscribeEvents', {
    name: 'event',
    arguments: [{ name: 'name', field: 'name', description: 'only events of this VM (default: every VM the server knows)', required: false }],
    hints: { skip: ['since', 'sinceTime', 'sinceByVm'] },
    options: [
      { flags: '--loop', key: 'loop', description: 'keep printing events (default: exit after the first)' },
      { flags: '--since <seq|time>', key: 'since', description: 'first replay the journal\'s events after this sequence number (with NAME) or time, then go on live' },
      timeoutOption('stop waiting after this many seconds (exit status 0)'),
    ],
    output: EventLine,
    jsonLines: true,
    notes: 'Without --loop, prints the first event and exits. With --loop, prints events until --timeout\n' +
      'passes (exit status 0) or the server closes the connection, then the number received.',
    run: runEvent,
  });
}
