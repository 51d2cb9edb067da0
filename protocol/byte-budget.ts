// A count of bytes shared by many holders under one limit: what the connections of one socket
// may hold in frames they have started and not finished.

/** Bytes held against a shared limit. */
export class ByteBudget {
  private used = 0;

  constructor(readonly limit: number) {}

  /** Bytes held now. */
  get held(): number {
    return this.used;
  }

  /** Takes `n` bytes; false (and nothing taken) when that would pass the limit. */
  tryTake(n: number): boolean {
    if (this.used + n > this.limit) return false;
    this.used += n;
    return true;
  }

  /** Gives back `n` bytes taken before. */
  give(n: number): void {
    this.used = Math.max(0, this.used - n);
  }
}
