// Which volumes of a pool have a change under way: a second change of the same volume (an
// upload racing a delete, two resizes) is refused at once instead of interleaving with it. A
// clone marks its source as read meanwhile: a change of the source is refused until the clone is
// done (a thin clone would read through a replaced file), while other clones of it may run.
import { VirtqError } from '../../protocol/errors.js';
import { describe } from './volume-files.js';

/** One pool's busy marks, by volume name. */
export class BusyMarks {
  private readonly marks = new Map<string, string>();
  private readonly readers = new Map<string, { op: string; count: number }>();

  constructor(private readonly pool: string) {}

  /** Runs `fn` with `name` marked busy by `op`; IN_USE naming the other operation when it already is, or is read. */
  async run<T>(name: string, op: string, fn: () => Promise<T>): Promise<T> {
    this.refuseIf(name, this.marks.get(name) ?? this.readers.get(name)?.op);
    this.marks.set(name, op);
    try {
      return await fn();
    } finally {
      this.marks.delete(name);
    }
  }

  /** Runs `fn` with `name` marked read by `op`: changes of it are refused meanwhile, other reads are not. */
  async reading<T>(name: string, op: string, fn: () => Promise<T>): Promise<T> {
    this.refuseIf(name, this.marks.get(name));
    const r = this.readers.get(name);
    if (r === undefined) this.readers.set(name, { op, count: 1 });
    else r.count += 1;
    try {
      return await fn();
    } finally {
      const now = this.readers.get(name);
      if (now !== undefined && --now.count === 0) this.readers.delete(name);
    }
  }

  private refuseIf(name: string, other: string | undefined): void {
    if (other === undefined) return;
    throw new VirtqError('IN_USE', `${describe({ pool: this.pool, name })} is busy: a ${other} is under way; try again when it ends`, { details: { operation: other } });
  }
}
