// Types for npm's qemu-qmp (an independent QMP client, used by the shared QMP socket's tests).
declare module 'qemu-qmp' {
  import { Socket } from 'node:net';
  class QMP extends Socket {
    /** From the greeting, once connected. */
    version: { qemu: { major: number; minor: number; micro: number }; package: string };
    capabilities: string[];
    connect(path: string, callback: (err: Error | null) => void): this;
    execute(command: string, callback: (err: Error | null, result: unknown) => void): void;
    execute(command: string, args: Record<string, unknown>, callback: (err: Error | null, result: unknown) => void): void;
  }
  export = QMP;
}
