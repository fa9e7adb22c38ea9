/**
 * A stream's index as first read: its entries from the index files of sealed segments, in
 * segment order, merged under the entries already in memory (written or moved since start-up,
 * so the newest). Entries sorted by position; of two at one position (compaction copied it and
 * the original's segment is not deleted yet) the later wins.
 */
import type { StreamIndex } from './stream.js';

/** `disk`: (start, address, length) triples per sealed segment, oldest segment first. */
export function mergeIndex(idx: StreamIndex, disk: Float64Array[]): void {
  const { starts, addrs, lens } = idx.flat();
  const mem = new Float64Array(idx.n * 3);
  for (let k = 0; k < idx.n; k++) {
    mem[k * 3] = starts[k]!;
    mem[k * 3 + 1] = addrs[k]!;
    mem[k * 3 + 2] = lens[k]!;
  }
  const parts = [...disk, mem];
  const n = parts.reduce((a, p) => a + p.length / 3, 0);
  const all = new Float64Array(n * 3);
  let at = 0;
  for (const p of parts) {
    all.set(p, at);
    at += p.length;
  }
  let sorted = true;
  for (let k = 1; k < n && sorted; k++) if (all[k * 3]! <= all[(k - 1) * 3]!) sorted = false;
  let order: number[] | undefined;
  if (!sorted) {
    const o = Array.from({ length: n }, (_, k) => k).sort(
      (a, b) => all[a * 3]! - all[b * 3]! || a - b,
    );
    order = o.filter((k, j) => j + 1 === o.length || all[o[j + 1]! * 3] !== all[k * 3]);
  }
  const m = order ? order.length : n;
  const s = new Float64Array(m);
  const a = new Float64Array(m);
  const l = new Uint32Array(m);
  for (let j = 0; j < m; j++) {
    const k = order ? order[j]! : j;
    s[j] = all[k * 3]!;
    a[j] = all[k * 3 + 1]!;
    l[j] = all[k * 3 + 2]!;
  }
  idx.replace(s, a, l);
}
