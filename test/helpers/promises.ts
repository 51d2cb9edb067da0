// Promise helpers of the unit tests: a promise settled by hand, and whether one has settled.

/** A promise and the function that resolves it. */
export function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => { resolve = r; });
  return { promise, resolve };
}

/** Whether `p` has settled (either way) once `turns` microtask turns have run. */
export async function settledSoon(p: Promise<unknown>, turns = 10): Promise<boolean> {
  let done = false;
  void p.then(() => { done = true; }, () => { done = true; });
  for (let i = 0; i < turns; i++) await Promise.resolve();
  return done;
}
