/**
 * Reads a file of any type (regular, FIFO, `<(…)`, device) without ever holding more than
 * `maxBytes + 1` of it: `/dev/zero` or an endless pipe is refused at the limit, not read until
 * memory runs out. A regular file's size is checked before any byte is read.
 */
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';

const CHUNK = 64 * 1024;

/** The file's bytes, or `undefined` when it holds more than `maxBytes`. Throws fs errors. */
export function readBounded(path: string, maxBytes: number): Buffer | undefined {
  const fd = openSync(path, 'r');
  try {
    const stats = fstatSync(fd);
    if (stats.isDirectory()) throw Object.assign(new Error('EISDIR'), { code: 'EISDIR' });
    if (stats.isFile() && stats.size > maxBytes) return undefined;
    const chunks: Buffer[] = [];
    let total = 0;
    while (total <= maxBytes) {
      const chunk = Buffer.allocUnsafe(Math.min(CHUNK, maxBytes + 1 - total));
      const n = readSync(fd, chunk, 0, chunk.length, null);
      if (n === 0) break;
      chunks.push(n === chunk.length ? chunk : chunk.subarray(0, n));
      total += n;
    }
    return total > maxBytes ? undefined : Buffer.concat(chunks, total);
  } finally {
    closeSync(fd);
  }
}
