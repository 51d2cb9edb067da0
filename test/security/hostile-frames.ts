// Hostile frames for a daemon socket, as fast-check arbitraries, given the valid messages to
// mutate and the procedures to send random bodies to: flipped bytes, truncations, wrong length
// headers, trailing garbage, wrong types in every header field, bodies that are not maps,
// unknown programs and procedures, random bodies, deep nesting and big arrays within the frame
// limit, random bytes. The same mix as fuzz-sockets.test.ts, for any daemon.
import fc from 'fast-check';
import { call, frame, rawFrame } from './hostile-client.js';

/** Anything CBOR can carry, up to depth `maxDepth`. */
export const anything = (maxDepth = 4): fc.Arbitrary<unknown> =>
  fc.anything({ maxDepth, withBigInt: true, withDate: true, withTypedArray: true, withNullPrototype: true, withMap: true, withSet: true });

/** The message map of a call to `prog.proc` with `body` set to `depth` nested arrays or maps. */
function nestedCall(prog: string, proc: string, depth: number, open: number): Buffer {
  const head = Buffer.from(frame({ prog, proc, type: 'call', serial: 3, status: 'ok' }).subarray(4));
  // One more pair in the map, for body (cbor-x writes map sizes as 0xb9 + u16, or in the first byte).
  if (head[0] === 0xb9) head.writeUInt16BE(head.readUInt16BE(1) + 1, 1);
  else head[0] = (head[0] as number) + 1;
  const unit = open === 0xa1 ? [0xa1, 0x00] : [open];
  const body = Buffer.from([0x64, ...Buffer.from('body'), ...Array.from({ length: depth }, () => unit).flat(), 0x00]);
  const payload = Buffer.concat([head, body]);
  return rawFrame(payload.length, payload);
}

/** Hostile frames built from `seeds` (valid messages) and `procs` ([program, procedure] pairs). */
export function hostileFrames(seeds: unknown[], procs: Array<[string, string]>, programs: string[]): fc.Arbitrary<Uint8Array> {
  const seedFrame = fc.constantFrom(...seeds).map(frame);
  const flip = fc.tuple(seedFrame, fc.array(fc.tuple(fc.nat(), fc.integer({ min: 1, max: 255 })), { minLength: 1, maxLength: 8 }))
    .map(([f, flips]) => { const b = Buffer.from(f); for (const [at, x] of flips) b[at % b.length] = (b[at % b.length] as number) ^ x; return b; });
  const truncated = fc.tuple(seedFrame, fc.nat()).map(([f, n]) => f.subarray(0, n % f.length));
  const wrongLength = fc.tuple(seedFrame, fc.oneof(fc.nat({ max: 4096 }), fc.constantFrom(0, 1, 0x7fff_ffff, 0xffff_ffff, 16 * 1024 * 1024, 16 * 1024 * 1024 + 1)))
    .map(([f, n]) => { const b = Buffer.from(f); b.writeUInt32BE(n >>> 0, 0); return b; });
  const appended = fc.tuple(seedFrame, fc.uint8Array({ minLength: 1, maxLength: 64 })).map(([f, tail]) => Buffer.concat([f, tail]));
  const headerTypes = fc.record({
    prog: fc.oneof(fc.constantFrom(...programs), anything()),
    proc: fc.oneof(fc.constantFrom(...procs.map(([, p]) => p)), anything()),
    type: fc.oneof(fc.constantFrom('call', 'reply', 'event', 'stream'), anything()),
    serial: fc.oneof(fc.nat(), fc.constantFrom(-1, 0, 2 ** 32, 2 ** 53, 1.5, Number.NaN), anything()),
    status: fc.oneof(fc.constantFrom('ok', 'error'), anything()),
    body: anything(),
  }, { requiredKeys: [] }).map(frame);
  const notAMap = anything().map(frame);
  const unknownNames = fc.tuple(
    fc.oneof(fc.string({ maxLength: 40 }), fc.constantFrom('__proto__', 'constructor', 'hasOwnProperty', ...programs)),
    fc.oneof(fc.string({ unit: 'binary', maxLength: 200 }), fc.constantFrom('__proto__', 'constructor', 'toString', 'valueOf', 'prototype', '')),
  ).map(([prog, proc]) => call(prog, proc, {}));
  const randomBody = fc.tuple(fc.constantFrom(...procs), anything(), fc.nat()).map(([[prog, proc], body, serial]) => call(prog, proc, body, serial));
  const nested = fc.tuple(fc.constantFrom(...procs), fc.integer({ min: 1, max: 120_000 }), fc.constantFrom(0x81, 0x9f, 0xa1))
    .map(([[prog, proc], depth, open]) => nestedCall(prog, proc, depth, open));
  const bigArray = fc.tuple(fc.integer({ min: 1000, max: 400_000 }), fc.constantFrom(0x00, 0x60, 0x80, 0xa0, 0xf6)).map(([n, item]) => {
    const body = Buffer.concat([Buffer.from([0x9a, (n >>> 24) & 255, (n >>> 16) & 255, (n >>> 8) & 255, n & 255]), Buffer.alloc(n, item)]);
    return rawFrame(body.length, body);
  });
  return fc.oneof(
    { arbitrary: flip, weight: 6 }, { arbitrary: truncated, weight: 2 }, { arbitrary: wrongLength, weight: 2 }, { arbitrary: appended, weight: 1 },
    { arbitrary: headerTypes, weight: 4 }, { arbitrary: notAMap, weight: 1 }, { arbitrary: unknownNames, weight: 2 },
    { arbitrary: randomBody, weight: 5 }, { arbitrary: nested, weight: 1 }, { arbitrary: bigArray, weight: 1 }, { arbitrary: fc.uint8Array({ maxLength: 300 }), weight: 2 },
  );
}
