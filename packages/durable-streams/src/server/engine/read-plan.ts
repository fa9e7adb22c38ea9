/**
 * Which bytes a read returns, worked out from the indexes alone: a page from `position` of at
 * most `maxBytes` (at least one message), through a fork into its source below the fork point.
 * A byte stream's page may end anywhere; a JSON page ends after a whole message.
 */
import type { Part } from './backend.js';
import { StorageError } from './errors.js';
import type { Stream, StreamIndex } from './stream.js';

export interface ReadPlan {
  /** Position the page starts at. */
  start: number;
  /** Position just after the page: the next offset. */
  end: number;
  parts: Part[];
  /** Data bytes of the parts (a JSON body adds brackets and a comma between parts). */
  bytes: number;
}

export interface Indexes {
  index(stream: Stream): StreamIndex;
  table(owner: Stream, i: number, count: number): Uint32Array;
}

/** The visible end of entry `i`: the next entry's start, or the visible tail. */
const entryEnd = (s: Stream, idx: StreamIndex, i: number) =>
  i + 1 < idx.n ? idx.start(i + 1) : s.visibleTail;

/** [owner, from, to) pieces of `stream` between two positions, sources first. */
function pieces(s: Stream, from: number, to: number, out: Array<[Stream, number, number]>): void {
  if (s.fork && from < s.fork.position) {
    pieces(s.fork.source, from, Math.min(to, s.fork.position), out);
    from = s.fork.position;
  }
  if (from < to) out.push([s, from, to]);
}

export function planRead(
  ix: Indexes,
  stream: Stream,
  position: number,
  maxBytes: number,
): ReadPlan {
  const list: Array<[Stream, number, number]> = [];
  pieces(stream, position, stream.visibleTail, list);
  const parts: Part[] = [];
  let bytes = 0;
  let pos = position;
  const json = stream.json;
  outer: for (const [owner, a, b] of list) {
    const idx = ix.index(owner);
    let i = Math.max(0, idx.find(a));
    pos = a;
    while (pos < b && i < idx.n) {
      const es = idx.start(i);
      const ee = entryEnd(owner, idx, i);
      if (es > pos)
        throw new StorageError('ERR_STORAGE_CORRUPT', `stream ${owner.id} has no data at ${pos}`);
      if (ee <= pos) {
        i++;
        continue;
      }
      const stop = Math.min(ee, b);
      let from: number;
      let to: number;
      let end = stop;
      if (!json) {
        end = Math.min(stop, position + maxBytes);
        from = pos - es;
        to = end - es;
      } else {
        const count = ee - es;
        if (count === 1) {
          from = 0;
          to = idx.len(i);
        } else {
          const table = ix.table(owner, i, count);
          const k0 = pos - es;
          const k1 = stop - es;
          from = k0 === 0 ? 0 : table[k0 - 1]! + 1;
          to = table[k1 - 1]!;
        }
        if (parts.length > 0 && bytes + (to - from) > maxBytes) break outer;
      }
      parts.push({ owner, i, from, to });
      bytes += to - from;
      pos = end;
      if (bytes >= maxBytes) break outer;
      i++;
    }
  }
  return { start: position, end: pos, parts, bytes };
}

/** The end of the append that contains `position` (where a fork's sub-offset may reach). */
export function nextBoundary(ix: Indexes, s: Stream, position: number): number {
  if (s.fork && position < s.fork.position)
    return Math.min(nextBoundary(ix, s.fork.source, position), s.fork.position);
  const idx = ix.index(s);
  const i = idx.find(position);
  if (i < 0) return position;
  const end = entryEnd(s, idx, i);
  return Math.max(end, position);
}
