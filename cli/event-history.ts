// The event journal on the command line: `domevents NAME` (the VM's history as a table, or the
// events as JSON) and the `--since` value `event` takes (a sequence number, or a time).
import { VirtqError, type EventHistory, type LifecycleEvent } from '../protocol/index.js';
import type { CallAdapter } from './command.js';
import { table } from './render.js';

/** `--since N|TIME`: a sequence number (digits) or a time (ISO 8601, or a date Date.parse reads). */
export function parseSince(text: string): { since: number } | { sinceTime: number } {
  if (/^\d+$/.test(text)) {
    const since = Number(text);
    if (!Number.isSafeInteger(since)) throw new VirtqError('INVALID_ARG', `--since ${text} is too large for a sequence number`);
    return { since };
  }
  // A signed or bare number is a bad sequence number, not a year Date.parse would guess.
  const t = /^[-+]?\d+$/.test(text) ? NaN : Date.parse(text);
  if (Number.isNaN(t) || t < 0) throw new VirtqError('INVALID_ARG', `--since takes a sequence number (e.g. 42) or a time (e.g. 2026-12-04T01:00:00Z), not "${text}"`);
  return { sinceTime: t };
}

function detailText(ev: LifecycleEvent): string {
  if (ev.details === undefined) return '';
  return Object.entries(ev.details).filter(([, v]) => v !== null && v !== undefined).map(([k, v]) => `${k}=${typeof v === 'object' ? JSON.stringify(v) : String(v)}`).join(' ');
}

/** `domevents NAME [--since N|TIME] [--limit N]`: the history, one row per event. */
export const domeventsAdapter: CallAdapter = {
  hints: { skip: ['since', 'sinceTime'], help: { limit: 'show at most this many events (the newest, unless --since is given)' } },
  options: [{ flags: '--since <seq|time>', key: 'since', description: 'only events after this sequence number or time' }],
  toArgs: (input, derived) => {
    const since = input.opts['since'];
    return { ...derived.toArgs(input), ...(typeof since === 'string' ? parseSince(since) : {}) };
  },
  render: (r) => {
    const h = r as EventHistory;
    const rows = h.events.map((ev) => [String(ev.seq ?? '-'), new Date(ev.timestamp).toISOString(), ev.event, ev.state, ev.reason, detailText(ev)]);
    const note = h.dropped > 0 ? `(${h.dropped} torn or damaged record(s) skipped)\n` : '';
    return (rows.length === 0 ? `No events after that point (last sequence number ${h.last})\n` : table(['Seq', 'Time', 'Event', 'State', 'Reason', 'Details'], rows)) + note;
  },
};
