// Splits a QMP client's bytes into top-level JSON texts by structure, as QEMU's own parser does,
// not by newline: some clients (npm's qemu-qmp) send commands with no newline between them. One
// text's size and nesting are bounded, so a client cannot make the shim buffer without limit.

/** One piece of the stream: a complete JSON object or array text, or bytes that cannot start one. */
export type StreamPiece = { kind: 'json'; text: string } | { kind: 'garbage'; text: string };

/** Limits of one piece. */
export interface SplitLimits {
  maxBytes: number;
  maxDepth: number;
}

const [OPEN_BRACE, CLOSE_BRACE, OPEN_BRACKET, CLOSE_BRACKET, QUOTE, BACKSLASH, NEWLINE] = [0x7b, 0x7d, 0x5b, 0x5d, 0x22, 0x5c, 0x0a];

function isSpace(b: number): boolean {
  return b === 0x20 || b === 0x09 || b === 0x0a || b === 0x0d;
}

/** Thrown (once; the splitter is then spent) when a piece passes a limit. */
export class PieceTooLarge extends Error {}

/** A streaming splitter; feed it chunks in order. */
export class JsonStreamSplitter {
  private parts: Buffer[] = [];
  private bytes = 0;
  private depth = 0;
  private inString = false;
  private escaped = false;
  private mode: 'idle' | 'json' | 'garbage' = 'idle';

  constructor(private readonly limits: SplitLimits) {}

  /** The pieces completed by `chunk`; throws PieceTooLarge when one passes a limit. */
  push(chunk: Buffer): StreamPiece[] {
    const out: StreamPiece[] = [];
    let start = 0;
    for (let i = 0; i < chunk.length; i++) {
      const b = chunk[i] as number;
      if (this.mode === 'idle') {
        if (isSpace(b)) continue;
        start = i;
        this.mode = b === OPEN_BRACE || b === OPEN_BRACKET ? 'json' : 'garbage';
        if (this.mode === 'garbage') continue;
      }
      if (this.mode === 'garbage') {
        // Bad bytes run to the end of the line, or to where a command may start again.
        if (b !== NEWLINE && b !== OPEN_BRACE) continue;
        out.push({ kind: 'garbage', text: this.take(chunk, start, i).trim() });
        if (b === NEWLINE) continue;
        start = i;
        this.mode = 'json';
      }
      if (this.step(b)) {
        out.push({ kind: 'json', text: this.take(chunk, start, i + 1) });
      }
    }
    if (this.mode !== 'idle') this.keep(chunk.subarray(start));
    return out;
  }

  // Advances the structure over one byte of a JSON text; true when the text is complete.
  private step(b: number): boolean {
    if (this.inString) {
      if (this.escaped) this.escaped = false;
      else if (b === BACKSLASH) this.escaped = true;
      else if (b === QUOTE) this.inString = false;
      return false;
    }
    if (b === QUOTE) this.inString = true;
    else if (b === OPEN_BRACE || b === OPEN_BRACKET) {
      if (++this.depth > this.limits.maxDepth) throw new PieceTooLarge(`JSON nesting deeper than ${this.limits.maxDepth}`);
    } else if (b === CLOSE_BRACE || b === CLOSE_BRACKET) {
      return --this.depth <= 0;
    }
    return false;
  }

  // The piece from `start` to `end` of `chunk`, after what earlier chunks left; the splitter is idle again.
  private take(chunk: Buffer, start: number, end: number): string {
    const piece = chunk.subarray(start, end);
    this.check(piece.length);
    const text = (this.parts.length === 0 ? piece : Buffer.concat([...this.parts, piece])).toString('utf8');
    this.parts = [];
    this.bytes = 0;
    this.depth = 0;
    this.inString = false;
    this.escaped = false;
    this.mode = 'idle';
    return text;
  }

  private keep(rest: Buffer): void {
    this.check(rest.length);
    this.parts.push(Buffer.from(rest));
    this.bytes += rest.length;
  }

  private check(more: number): void {
    if (this.bytes + more > this.limits.maxBytes) throw new PieceTooLarge(`a QMP input is longer than ${this.limits.maxBytes} bytes`);
  }
}
