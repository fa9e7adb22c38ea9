/**
 * `file-fast` and `file-durable`: the bytes live in segment files, memory holds the streams'
 * indexes and a window of the latest writes. A batch is encoded straight into the window and
 * written from it with one `fs.write` (to a head opened `O_DSYNC` in file-durable), on libuv's
 * thread pool, so the event loop keeps serving while the disk works; live readers of what was
 * just written are served from the window without touching the disk.
 */
import { close, closeSync, fsync, openSync, read, readSync, write } from 'node:fs';
import { rename, rm, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import {
  addrHigh,
  addrLow,
  type Backend,
  getTable,
  type Part,
  type Write,
  type WriteDone,
} from './backend.js';
import { batchSize, encodeBatch, recordSize, T_CREATE, T_DELETE } from './codec.js';
import { mergeIndex } from './log-index.js';
import {
  encodeIndex,
  headFlags,
  indexFile,
  loadEntries,
  Segment,
  segmentFile,
  syncDirAsync,
  writeAtomic,
} from './segments.js';
import { encodeSnapshot } from './snapshot.js';
import type { Stream } from './stream.js';
import type { StreamTable } from './table.js';
import { WriteWindows } from './windows.js';

export interface LogStoreOptions {
  dir: string;
  /** Every batch durable before it is acknowledged (file-durable): the head is opened O_DSYNC. */
  sync: boolean;
  /** Seal a segment past this size. Default 64 MiB. */
  segmentBytes?: number;
  /** …or past this many records, which bounds the replay at start-up. Default 65,536. */
  segmentRecords?: number;
  /** Bytes of the latest writes kept in memory for readers. Default 4 MiB. */
  windowBytes?: number;
}

export interface RecoveredLog {
  segments: Segment[];
  head: Segment;
  headFd: number;
  storeId: string;
  snapshotSegment: number;
  prevSnapshotSegment: number;
}

export class LogStore implements Backend {
  readonly segDir: string;
  readonly #o: Required<LogStoreOptions>;
  readonly #segments = new Map<number, Segment>();
  #head: Segment;
  #headFd: number;
  #headRecords = 0;
  readonly #windows: WriteWindows;
  #sealing: Promise<void> | undefined;
  #failed: Error | undefined;
  readonly storeId: string;
  /** Replay at start-up begins at the latest durable snapshot's segment (and the one before). */
  #snapshotSegment: number;
  #prevSnapshotSegment: number;
  /** Called after a segment is sealed (compaction looks for work). */
  onSealed: (() => void) | undefined;

  constructor(
    options: LogStoreOptions,
    private readonly streams: StreamTable,
    recovered: RecoveredLog,
  ) {
    this.#o = {
      segmentBytes: 64 * 1024 * 1024,
      segmentRecords: 65_536,
      windowBytes: 4 * 1024 * 1024,
      ...options,
    };
    this.segDir = join(options.dir, 'segments');
    for (const s of recovered.segments) this.#segments.set(s.n, s);
    this.#head = recovered.head;
    this.#headFd = recovered.headFd;
    this.#headRecords = recovered.head.written?.n ?? 0;
    this.storeId = recovered.storeId;
    this.#snapshotSegment = recovered.snapshotSegment;
    this.#prevSnapshotSegment = recovered.prevSnapshotSegment;
    this.#windows = new WriteWindows(this.#o.windowBytes);
  }

  get segments(): ReadonlyMap<number, Segment> {
    return this.#segments;
  }

  /** Segments no snapshot needs any more for replay: only their data can still matter. */
  get compactBelow(): number {
    return Math.min(this.#snapshotSegment, this.#prevSnapshotSegment);
  }

  get headSegment(): number {
    return this.#head.n;
  }

  write(batch: Write[], done: WriteDone): void {
    if (this.#failed) {
      done(this.#failed, undefined);
      return;
    }
    const records = batch.map((w) => w.record);
    const size = batchSize(records);
    const head = this.#head;
    const win = this.#windows.take(head.n, head.size, size);
    const at = win.used;
    const dataAt = new Float64Array(records.length);
    encodeBatch(win.buf, at, records, dataAt);
    const filePos = head.size;
    // Decided now, while the checked state is exactly the state after this batch.
    const seal =
      head.size + size >= this.#o.segmentBytes ||
      this.#headRecords + records.length >= this.#o.segmentRecords;
    const snapshot = seal ? encodeSnapshot(this.streams, this.storeId, head.n + 1) : undefined;
    const fd = this.#headFd;
    const finish = (error: Error | null) => {
      if (error) {
        this.#failed = error;
        return done(error, undefined);
      }
      win.used = at + size;
      head.size = filePos + size;
      this.#headRecords += records.length;
      const addrs = new Float64Array(records.length);
      for (let k = 0; k < records.length; k++) {
        const r = records[k]!;
        if (r.t === T_DELETE || r.payload.count === 0) {
          addrs[k] = Number.NaN;
          continue;
        }
        const off = filePos + dataAt[k]! - at;
        addrs[k] = head.addr(off);
        const start = r.t === T_CREATE ? (batch[k]!.stream.fork?.position ?? 0) : r.start;
        head.note(r.id, start, off, r.payload.bytes, recordSize(r));
      }
      if (snapshot) this.#seal(head, snapshot);
      done(null, addrs);
    };
    writeFully(fd, win.buf, at, size, filePos, (error) => {
      // The head is opened O_DSYNC when batches must be durable (file-durable): the write was
      // the sync, and the batch is on disk now.
      finish(error);
    });
  }

  /**
   * Seals `seg`: a new head takes the next write at once; the index, then the snapshot (replay
   * starts after it) are written behind it, one seal after the other.
   */
  #seal(seg: Segment, snapshot: Buffer): void {
    const next = new Segment(seg.n + 1, 0, false);
    const fd = openSync(join(this.segDir, segmentFile(next.n)), headFlags(this.#o.sync, true));
    seg.fd = this.#headFd; // stays open for reads of the sealed segment
    this.#segments.set(next.n, next);
    this.#head = next;
    this.#headFd = fd;
    this.#headRecords = 0;
    const sealing = (this.#sealing ?? Promise.resolve()).then(async () => {
      await syncDirAsync(this.segDir);
      await writeAtomic(this.segDir, indexFile(seg.n), encodeIndex(seg));
      seg.sealed = true;
      seg.written = undefined;
      await this.#writeSnapshot(snapshot, next.n);
    });
    this.#sealing = sealing;
    sealing.then(
      () => {
        if (this.#sealing === sealing) this.#sealing = undefined;
        this.onSealed?.();
      },
      (error: Error) => {
        this.#failed = error;
      },
    );
  }

  async #writeSnapshot(snapshot: Buffer, segment: number): Promise<void> {
    const dir = this.#o.dir;
    await writeAtomic(dir, 'snapshot', snapshot, () =>
      rename(join(dir, 'snapshot'), join(dir, 'snapshot.prev')).catch(() => {}),
    );
    this.#prevSnapshotSegment = this.#snapshotSegment;
    this.#snapshotSegment = segment;
  }

  /** Resolves once the seals in progress (indexes, snapshots) are on disk. */
  async sealed(): Promise<void> {
    await this.#sealing?.catch(() => {});
  }

  /** Waits for a seal in progress, then makes everything written durable (compaction). */
  async flush(): Promise<void> {
    await this.#sealing;
    await new Promise<void>((resolve, reject) =>
      fsync(this.#headFd, (e) => (e ? reject(e) : resolve())),
    );
  }

  #fdFor(n: number): number | undefined {
    if (n === this.#head.n) return this.#headFd;
    const seg = this.#segments.get(n);
    if (!seg) return undefined;
    seg.fd ??= openSync(join(this.segDir, segmentFile(n)), 'r');
    return seg.fd;
  }

  read(parts: Part[]): Buffer[] | Promise<Buffer[]> {
    const out: Buffer[] = new Array(parts.length);
    let missing: number[] | undefined;
    for (let k = 0; k < parts.length; k++) {
      const { owner, i, from, to } = parts[k]!;
      const addr = owner.index.addr(i);
      const hit = this.#windows.find(addrHigh(addr), addrLow(addr) + from, to - from);
      if (hit) out[k] = hit;
      else {
        missing ??= [];
        missing.push(k);
      }
    }
    if (!missing) return out;
    return this.#readDisk(parts, missing, out);
  }

  /** Reads parts from disk, one read per run of neighbouring parts in a segment. */
  async #readDisk(parts: Part[], missing: number[], out: Buffer[]): Promise<Buffer[]> {
    const spans = missing.map((k) => {
      const { owner, i, from, to } = parts[k]!;
      const addr = owner.index.addr(i);
      return { k, seg: addrHigh(addr), off: addrLow(addr) + from, len: to - from };
    });
    spans.sort((a, b) => a.seg - b.seg || a.off - b.off);
    let g = 0;
    while (g < spans.length) {
      const first = spans[g]!;
      let end = first.off + first.len;
      let h = g + 1;
      while (h < spans.length) {
        const s = spans[h]!;
        if (s.seg !== first.seg || s.off - end > 65_536 || s.off + s.len - first.off > 4 << 20)
          break;
        end = Math.max(end, s.off + s.len);
        h++;
      }
      const buf = await this.#pread(first.seg, first.off, end - first.off);
      for (let x = g; x < h; x++) {
        const s = spans[x]!;
        out[s.k] = buf.subarray(s.off - first.off, s.off - first.off + s.len);
      }
      g = h;
    }
    return out;
  }

  #pread(n: number, position: number, length: number): Promise<Buffer> {
    const seg = this.#segments.get(n);
    const fd = this.#fdFor(n);
    if (!seg || fd === undefined)
      return Promise.reject(new Error(`segment ${segmentFile(n)} is gone`));
    seg.readers++;
    const buf = Buffer.allocUnsafeSlow(length);
    return new Promise<Buffer>((resolve, reject) => {
      let got = 0;
      const step = () =>
        read(fd, buf, got, length - got, position + got, (error, n) => {
          if (error) return reject(error);
          if (n === 0)
            return reject(new Error(`short read in ${segmentFile(seg.n)} at ${position}`));
          got += n;
          if (got < length) step();
          else resolve(buf);
        });
      step();
    }).finally(() => {
      seg.readers--;
      if (seg.doomed && seg.readers === 0) this.#closeSegment(seg);
    });
  }

  table(owner: Stream, i: number, count: number): Uint32Array {
    const addr = owner.index.addr(i);
    const n = addrHigh(addr);
    const off = addrLow(addr) - count * 4;
    const hit = this.#windows.find(n, off, count * 4);
    if (hit) return getTable(hit, count * 4, count);
    const buf = Buffer.allocUnsafe(count * 4);
    readSync(this.#fdFor(n)!, buf, 0, buf.length, off);
    return getTable(buf, buf.length, count);
  }

  loadIndex(stream: Stream): void {
    if (stream.loaded) return;
    const disk: Float64Array[] = [];
    for (const seg of [...this.#segments.values()].sort((a, b) => a.n - b.n)) {
      if (!seg.inMemory && seg.dir.has(stream.id))
        disk.push(loadEntries(join(this.segDir, indexFile(seg.n)), seg, stream.id));
    }
    mergeIndex(stream.index, disk);
    stream.loaded = true;
  }

  dropped(): void {}

  /** Removes a segment no stream needs (after its live data was copied to the head). */
  async deleteSegment(n: number): Promise<void> {
    const seg = this.#segments.get(n);
    if (!seg || n === this.#head.n) return;
    this.#segments.delete(n);
    seg.doomed = true;
    await unlink(join(this.segDir, indexFile(n))).catch(() => {});
    await unlink(join(this.segDir, segmentFile(n))).catch(() => {});
    await syncDirAsync(this.segDir);
    if (seg.readers === 0) this.#closeSegment(seg);
  }

  #closeSegment(seg: Segment): void {
    if (seg.fd !== undefined) close(seg.fd, () => {});
    seg.fd = undefined;
  }

  get memory(): number {
    return this.#windows.memory;
  }

  get storedInMemory(): number {
    return 0;
  }

  /**
   * Seals a head of some size so that the next start replays little, and closes every file
   * (a small head is left to be replayed rather than leave a small segment behind).
   */
  async close(): Promise<void> {
    await this.#sealing?.catch(() => {});
    const head = this.#head;
    const big =
      head.size >= this.#o.segmentBytes / 16 || this.#headRecords >= this.#o.segmentRecords / 16;
    if (!this.#failed && big) {
      this.#seal(head, encodeSnapshot(this.streams, this.storeId, head.n + 1));
      await this.#sealing?.catch(() => {});
    }
    for (const seg of this.#segments.values()) {
      if (seg.fd !== undefined && seg.fd !== this.#headFd) closeSync(seg.fd);
      seg.fd = undefined;
    }
    closeSync(this.#headFd);
    await rm(join(this.#o.dir, 'LOCK'), { force: true });
  }
}

/** `fs.write` until every byte is written (a regular file may take a write in parts). */
function writeFully(
  fd: number,
  buf: Buffer,
  offset: number,
  length: number,
  position: number,
  done: (error: Error | null) => void,
): void {
  write(fd, buf, offset, length, position, (error, n) => {
    if (error) return done(error);
    if (n === length) return done(null);
    if (n === 0) return done(new Error('the disk accepted no bytes'));
    writeFully(fd, buf, offset + n, length - n, position + n, done);
  });
}
