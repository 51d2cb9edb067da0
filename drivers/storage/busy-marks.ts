// Which volumes of a pool have a change under way: a second change of the same volume (an
// upload racing a delete, two resizes) is refused at once instead of interleaving with it.
import { VirtqError } from '../../protocol/errors.js';
import { describe } from './volume-files.js';

/** One pool's busy marks, by volume name. */
export class BusyMarks {
  private readonly marks = new Map<string, string>();

  constructor(private readonly pool: string) {}

  /** Runs `fn` with `name` marked busy by `op`; IN_USE naming the other operation when it already is. */
  async run<T>(name: string, op: string, fn: () => Promise<T>): Promise<T> {
    const other = this.marks.get(name);
    if (other !== undefined) {
      throw new VirtqError('IN_USE', `${describe({ pool: this.pool, name })} is busy: a ${other} is under way; try again when it ends`, { details: { operation: other } });
    }
    this.marks.set(name, op);
    try {
      return await fn();
    } finally {
      this.marks.delete(name);
    }
  }

}
