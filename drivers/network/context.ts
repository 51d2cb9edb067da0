// What every part of the network driver is handed: the runner, the clock, the state store, this
// instance's ownership mark and the event sink. Built once by NetworkDriver.open.
import type { Clock } from '../../protocol/clock.js';
import type { CommandRunner } from './runner.js';
import type { StateStore } from './state-store.js';
import type { NetworkEvent } from './types.js';

/** The driver's injected world. */
export interface DriverContext {
  runner: CommandRunner;
  clock: Clock;
  store: StateStore;
  /** Written into the ifalias of every bridge and tap this driver creates. */
  instance: string;
  emit(event: NetworkEvent): void;
}
