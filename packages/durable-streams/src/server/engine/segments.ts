/**
 * Segment files and their indexes. The log is a numbered series of segment files; when one is
 * sealed, its index is written beside it: a directory (which streams have entries in it, how
 * many, how many bytes) and each stream's entries as one block with its own checksum. Start-up
 * reads only the directories; a stream's block is read the first time the stream is read.
 */
import { closeSync, constants, fsyncSync, openSync, readSync } from 'node:fs';
import { open, rename } from 'node:fs/promises';
import { join } from 'node:path';
import { HIGH } from './backend.js';
import { crc32c } from './crc32c.js';

const IDX_MAGIC = 0x44534958; // "DSIX"
const HEAD = 16;
const DIR = 24;
const ENTRY = 16;

export const segmentFile = (n: number) => `${String(n).padStart(8, '0')}.log`;
export const indexFile = (n: number) => `${String(n).padStart(8, '0')}.idx`;
export const segmentNumber = (name: string): number | undefined => {
  const m = /^(\d{8})\.log$/.exec(name);
  return m ? Number(m[1]) : undefined;
};

export interface DirEntry {
  count: number;
  /** Framed bytes of the stream's data records here: what compaction would have to copy. */
  bytes: number;
  /** Index of the stream's first entry in the index file's entry area. */
  first: number;
  crc: number;
}

/** Entries written to an unsealed segment, in write order, for its index when sealed. */
class Written {
  ids = new Uint32Array(64);
  starts = new Float64Array(64);
  offs = new Uint32Array(64);
  lens = new Uint32Array(64);
  n = 0;

  add(id: number, start: number, off: number, len: number): void {
    if (this.n === this.ids.length) {
      const grow = <T extends Uint32Array | Float64Array>(a: T): T => {
        const b = new (a.constructor as new (n: number) => T)(a.length * 2);
        b.set(a);
        return b;
      };
      this.ids = grow(this.ids);
      this.starts = grow(this.starts);
      this.offs = grow(this.offs);
      this.lens = grow(this.lens);
    }
    this.ids[this.n] = id;
    this.starts[this.n] = start;
    this.offs[this.n] = off;
    this.lens[this.n] = len;
    this.n++;
  }
}

export class Segment {
  readonly dir = new Map<number, DirEntry>();
  /** Entries of this segment not in an index file yet (unsealed, or replayed at open). */
  written: Written | undefined = new Written();
  /** Read descriptor (opened on first read of a sealed segment). */
  fd: number | undefined;
  readers = 0;
  /** Unlinked by compaction: closed once its last read returns. */
  doomed = false;
  /** Its entries are in the streams' in-memory indexes (replayed or written since start). */
  inMemory = true;

  constructor(
    readonly n: number,
    public size: number,
    public sealed: boolean,
  ) {}

  /** Notes a data record of stream `id` written at `off` (its data) with `recordBytes` framed. */
  note(id: number, start: number, off: number, len: number, recordBytes: number): void {
    const d = this.dir.get(id);
    if (d) {
      d.count++;
      d.bytes += recordBytes;
    } else this.dir.set(id, { count: 1, bytes: recordBytes, first: -1, crc: 0 });
    this.written?.add(id, start, off, len);
  }

  addr(off: number): number {
    return this.n * HIGH + off;
  }
}

/**
 * Open flags for the head segment. When every batch must be durable before it is acknowledged
 * (`sync`), the file is opened `O_DSYNC`: a write returns once its data is on disk, so a batch
 * costs one trip to libuv's thread pool instead of two (a write, then an `fdatasync`).
 */
export function headFlags(sync: boolean, create: boolean): number | string {
  if (!sync) return create ? 'wx+' : 'r+';
  const { O_RDWR, O_CREAT, O_EXCL, O_DSYNC } = constants;
  return create ? O_RDWR | O_CREAT | O_EXCL | O_DSYNC : O_RDWR | O_DSYNC;
}

/** Builds the index file of a segment from the entries written to it. */
export function encodeIndex(seg: Segment): Buffer {
  const w = seg.written!;
  const ids = [...seg.dir.keys()];
  const first = new Map<number, number>();
  let at = 0;
  for (const id of ids) {
    first.set(id, at);
    at += seg.dir.get(id)!.count;
  }
  const entriesAt = HEAD + ids.length * DIR + 4;
  const buf = Buffer.alloc(entriesAt + at * ENTRY);
  const fill = new Map(first);
  for (let k = 0; k < w.n; k++) {
    const slot = fill.get(w.ids[k]!)!;
    fill.set(w.ids[k]!, slot + 1);
    const p = entriesAt + slot * ENTRY;
    buf.writeDoubleLE(w.starts[k]!, p);
    buf.writeUInt32LE(w.offs[k]!, p + 8);
    buf.writeUInt32LE(w.lens[k]!, p + 12);
  }
  buf.writeUInt32BE(IDX_MAGIC, 0);
  buf.writeUInt32LE(1, 4);
  buf.writeUInt32LE(seg.n, 8);
  buf.writeUInt32LE(ids.length, 12);
  ids.forEach((id, k) => {
    const d = seg.dir.get(id)!;
    const from = entriesAt + first.get(id)! * ENTRY;
    d.first = first.get(id)!;
    d.crc = crc32c(buf, 0, from, from + d.count * ENTRY);
    const p = HEAD + k * DIR;
    buf.writeUInt32LE(id, p);
    buf.writeUInt32LE(d.count, p + 4);
    buf.writeUInt32LE(d.first, p + 8);
    buf.writeUInt32LE(d.crc, p + 12);
    buf.writeDoubleLE(d.bytes, p + 16);
  });
  buf.writeUInt32LE(crc32c(buf, 0, 0, entriesAt - 4), entriesAt - 4);
  return buf;
}

function readAt(fd: number, length: number, position: number): Buffer {
  const buf = Buffer.allocUnsafe(length);
  let got = 0;
  while (got < length) {
    const n = readSync(fd, buf, got, length - got, position + got);
    if (n === 0) break;
    got += n;
  }
  return got === length ? buf : buf.subarray(0, got);
}

/** Reads an index file's directory into `seg.dir`; false when it is missing its checksum. */
export function loadDirectory(path: string, seg: Segment): boolean {
  const fd = openSync(path, 'r');
  try {
    const head = readAt(fd, HEAD, 0);
    if (head.length < HEAD || head.readUInt32BE(0) !== IDX_MAGIC || head.readUInt32LE(8) !== seg.n)
      return false;
    const streams = head.readUInt32LE(12);
    const dir = readAt(fd, streams * DIR + 4, HEAD);
    if (dir.length < streams * DIR + 4) return false;
    const all = Buffer.concat([head, dir]);
    if (crc32c(all, 0, 0, all.length - 4) !== all.readUInt32LE(all.length - 4)) return false;
    for (let k = 0; k < streams; k++) {
      const p = k * DIR;
      seg.dir.set(dir.readUInt32LE(p), {
        count: dir.readUInt32LE(p + 4),
        first: dir.readUInt32LE(p + 8),
        crc: dir.readUInt32LE(p + 12),
        bytes: dir.readDoubleLE(p + 16),
      });
    }
    seg.written = undefined;
    seg.inMemory = false;
    return true;
  } finally {
    closeSync(fd);
  }
}

/** A stream's entries from a sealed segment's index file: (start, address, length) triples. */
export function loadEntries(path: string, seg: Segment, id: number): Float64Array {
  const d = seg.dir.get(id);
  if (!d) return new Float64Array(0);
  const fd = openSync(path, 'r');
  try {
    const entriesAt = HEAD + seg.dir.size * DIR + 4;
    const buf = readAt(fd, d.count * ENTRY, entriesAt + d.first * ENTRY);
    if (buf.length !== d.count * ENTRY || crc32c(buf) !== d.crc)
      throw new Error(`the index ${path} is corrupt (entries of stream ${id})`);
    const out = new Float64Array(d.count * 3);
    for (let k = 0; k < d.count; k++) {
      out[k * 3] = buf.readDoubleLE(k * ENTRY);
      out[k * 3 + 1] = seg.addr(buf.readUInt32LE(k * ENTRY + 8));
      out[k * 3 + 2] = buf.readUInt32LE(k * ENTRY + 12);
    }
    return out;
  } finally {
    closeSync(fd);
  }
}

/**
 * Writes `data` to `dir/name` atomically, off the event loop: a temporary file, fsync, rename
 * (after `before`, which may move the old file aside), fsync of the folder.
 */
export async function writeAtomic(
  dir: string,
  name: string,
  data: Buffer,
  before?: () => Promise<void>,
): Promise<void> {
  const tmp = join(dir, `${name}.tmp`);
  const file = await open(tmp, 'w');
  try {
    await file.writeFile(data);
    await file.sync();
  } finally {
    await file.close();
  }
  await before?.();
  await rename(tmp, join(dir, name));
  await syncDirAsync(dir);
}

export async function syncDirAsync(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

export function syncDir(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}
