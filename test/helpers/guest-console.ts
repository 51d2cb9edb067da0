// A VM's serial console through the client library, read with a SerialReader: wait for the
// guest's markers and type commands at its shell (TEST-GUEST.md: the shell starts on a newline).
import { Readable } from 'node:stream';
import type { Connection } from '../../client/index.js';
import { SerialReader } from './serial-reader.js';

/** An open console. */
export interface GuestConsole {
  readonly serial: SerialReader;
  /** Types `line` and a newline. */
  type(line: string): void;
  /** Runs `command` at the guest's shell and waits for `marker` printed after it. */
  run(command: string, marker: string, timeoutMs?: number): Promise<void>;
  close(): void;
}

/** Opens VM `name`'s console on `conn`. */
export async function guestConsole(conn: Connection, name: string): Promise<GuestConsole> {
  const stream = await conn.console(name);
  const serial = new SerialReader(Readable.from(stream));
  let shell = false;
  const type = (line: string): void => stream.write(`${line}\n`);
  return {
    serial,
    type,
    async run(command, marker, timeoutMs = 30_000) {
      if (!shell) {
        type('');
        await serial.waitFor('tg# ', timeoutMs);
        shell = true;
      }
      const from = serial.mark();
      type(command);
      await serial.waitFor(marker, timeoutMs, from + command.length);
    },
    close: () => { serial.dispose(); stream.end(); },
  };
}
