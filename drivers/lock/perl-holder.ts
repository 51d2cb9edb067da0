// A lease holder that takes its lock in-process (issues 15 and 16): a perl one-liner (perl-base
// is Essential in Debian) started before it is needed, with its own description of QEMU's lifeline
// as fd 3. Told `go MODE LOCKFILE` on its stdin it opens the lock file, flock(2)s it without
// waiting and answers `locked` or `conflict` on its stdout; once locked it execs flock(1) as
// flock.ts's holder (`flock -s 3`: same pid and start time, the lease's description kept open
// across the exec), which blocks on a shared lock of the lifeline, gets it only once QEMU (the
// lifeline's exclusive holder) has exited, and exits, closing the lease. So a start or a
// migration's switchover pays a pipe write and an answer instead of forking flock(1), and a held
// lease costs what it always did: a sleeping flock(1) (0.2 MiB PSS against 2.0 for a sleeping
// perl, measured in session 17). A release is flock.ts's: SIGKILL, then the pid polled.
//
// Lifetimes, as flock.ts's: detached, so it outlives the shim once locked; its stdin reaching EOF
// before `go` (the shim gone, or disarmed) ends it holding nothing; a write to a gone shim is
// ignored (SIGPIPE ignored), so a shim's death never ends a holder that holds a lease. Should the
// exec fail, perl itself waits on the lifeline the same way.
import { spawn } from 'node:child_process';
import type { Readable, Writable } from 'node:stream';
import { VirtqError } from '../../protocol/errors.js';
import { processStart } from '../host/proc.js';
import type { GoResult, PreparedHolder } from './flock.js';
import type { LeaseMode } from './types.js';

/** Where perl is looked for (Debian's perl-base installs it here). */
export const DEFAULT_PERL = '/usr/bin/perl';

// Numeric constants (Linux): `use Fcntl` would cost a module load per holder. flock: SH 1, EX 2,
// NB 4, UN 8; sysopen O_RDWR|O_CREAT = 66 (read-write: over NFS an exclusive flock needs it);
// 11 is EWOULDBLOCK. Exit 75 on conflict, as flock(1) is told to use (-E 75).
// $^F=255: no fd perl opens is close-on-exec, so the lease's description survives the exec.
// $ARGV[0] is flock(1)'s path.
export const HOLDER_SCRIPT = [
  "$^F=255;$SIG{PIPE}='IGNORE';$|=1;",
  'my $g=<STDIN>;exit 1 unless defined $g&&$g=~/^go ([xs]) (.+)\\n$/;',
  'sysopen(my $l,$2,66,0644)or do{print "error $!\\n";exit 3};',
  'unless(flock($l,($1 eq "x"?2:1)|4)){print $!==11?"conflict\\n":"error $!\\n";exit 75}',
  "print \"locked\\n\";open(STDIN,'<','/dev/null');open(STDOUT,'>','/dev/null');",
  "exec{$ARGV[0]}($ARGV[0],'-s','3');open(my $f,'<&=3')or exit 2;1 until flock($f,1);exit 0",
].join('');

/** How long a `go` waits for its answer (a lock file on a hung NFS server) before giving up on the holder. */
const GO_TIMEOUT_MS = 10_000;

/** Starts an idle holder bound to `lifelineFd` (its own description of QEMU's lifeline); `flock` is flock(1)'s path. */
export function startHolder(perl: string, flock: string, lifelineFd: number): PreparedHolder {
  const child = spawn(perl, ['-e', HOLDER_SCRIPT, flock], { stdio: ['pipe', 'pipe', 'ignore', lifelineFd], detached: true });
  child.once('error', () => undefined);
  const { stdin, stdout } = child;
  const pid = child.pid;
  const start = pid === undefined ? undefined : processStart(pid);
  if (pid === undefined || start === undefined || stdin === null || stdout === null) {
    child.kill('SIGKILL');
    throw new VirtqError('LOCK_MANAGER_UNAVAILABLE', `cannot start an in-process lease holder (${perl})`);
  }
  stdin.on('error', () => undefined);
  const id = { pid, start };
  const lines = new LineReader(stdout);
  // Nothing of it keeps the shim alive: a locked holder outlives its shim, an idle one ends with it.
  child.unref();
  setRef(stdin, false);
  setRef(stdout, false);
  let told = false;
  return {
    id,
    go: async (mode: LeaseMode, lockFile: string): Promise<GoResult> => {
      if (told) return 'failed';
      told = true;
      if (lockFile.includes('\n')) { child.kill('SIGKILL'); return 'failed'; }
      stdin.end(`go ${mode === 'exclusive' ? 'x' : 's'} ${lockFile}\n`);
      const said = await lines.next(GO_TIMEOUT_MS);
      // No answer in time: killed, so a lock it might take later dies with it.
      if (said === undefined) child.kill('SIGKILL');
      lines.close();
      return said === 'locked' || said === 'conflict' ? said : 'failed';
    },
    disarm: () => {
      if (told) return;
      told = true;
      child.kill('SIGKILL');
      stdin.destroy();
      lines.close();
    },
  };
}

/** Lines from a holder's stdout, one awaited at a time; undefined at EOF or after a timeout. */
class LineReader {
  private buf = '';
  private ended = false;
  private waiter: ((line: string | undefined) => void) | undefined;

  constructor(private readonly s: Readable) {
    s.setEncoding('utf8');
    s.on('data', (d: string) => { this.buf += d; this.wake(); });
    s.on('close', () => { this.ended = true; this.wake(); });
    s.on('error', () => { this.ended = true; this.wake(); });
  }

  /** The next line; the pipe keeps the process alive only while a line is awaited. */
  next(timeoutMs: number): Promise<string | undefined> {
    return new Promise((resolve) => {
      setRef(this.s, true);
      const done = (line: string | undefined): void => { clearTimeout(timer); setRef(this.s, false); resolve(line); };
      const timer = setTimeout(() => { this.waiter = undefined; done(undefined); }, timeoutMs);
      this.waiter = done;
      this.wake();
    });
  }

  close(): void {
    this.s.destroy();
  }

  private wake(): void {
    const w = this.waiter;
    if (w === undefined) return;
    const nl = this.buf.indexOf('\n');
    if (nl < 0 && !this.ended) return;
    this.waiter = undefined;
    if (nl < 0) { w(undefined); return; }
    const line = this.buf.slice(0, nl);
    this.buf = this.buf.slice(nl + 1);
    w(line);
  }
}

/** A child's stdio pipe is a net.Socket, whose handle can be (un)ref'd; the stream types do not say so. */
function setRef(s: Readable | Writable, on: boolean): void {
  const handle = s as Partial<Record<'ref' | 'unref', () => void>>;
  (on ? handle.ref : handle.unref)?.call(s);
}
