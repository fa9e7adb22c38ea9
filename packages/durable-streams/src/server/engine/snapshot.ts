/**
 * The stream table as data: every stream's configuration and checked state, without its data
 * or index. The log store writes it when a segment is sealed (so start-up replays one segment,
 * not all history); the SQLite store keeps one row of it per stream.
 */
import { crc32c } from './crc32c.js';
import { Stream } from './stream.js';
import type { StreamTable } from './table.js';

const MAGIC = 0x44535331; // "DSS1"
const FRAME = 12;

/** One stream, short keys: a snapshot of a million streams stays small. */
export interface StreamMeta {
  i: number;
  k: string;
  ct: string;
  ttl?: number;
  ex?: number;
  ext?: string;
  c?: 1;
  cb?: [string, number, number];
  t: number;
  b: number;
  s?: string;
  p?: Array<[string, number, number]>;
  f?: [number, number, number, number];
  d?: 1;
}

export function streamMeta(s: Stream): StreamMeta {
  const m: StreamMeta = { i: s.id, k: s.key, ct: s.config.contentType, t: s.tail, b: s.bytes };
  if (s.config.ttlSeconds !== undefined) m.ttl = s.config.ttlSeconds;
  if (s.config.expiresAt !== undefined) {
    m.ex = s.config.expiresAt;
    if (s.config.expiresAtText !== undefined) m.ext = s.config.expiresAtText;
  }
  if (s.closed) m.c = 1;
  if (s.closedBy) m.cb = [s.closedBy.id, s.closedBy.epoch, s.closedBy.seq];
  if (s.lastStreamSeq !== undefined) m.s = s.lastStreamSeq;
  if (s.producers.size) m.p = [...s.producers].map(([id, p]) => [id, p.epoch, p.lastSeq]);
  if (s.fork) m.f = [s.fork.source.id, s.fork.position, s.fork.offset, s.fork.subOffset];
  if (s.softDeleted) m.d = 1;
  return m;
}

/**
 * Rebuilds streams from their metadata: sources before forks, every stream durable as stored,
 * its index still on disk (`loaded` false) until first read.
 */
export function restoreStreams(table: StreamTable, metas: StreamMeta[], now: number): void {
  const pending = new Map(metas.map((m) => [m.i, m]));
  const restore = (m: StreamMeta, depth: number): Stream => {
    const existing = table.byId.get(m.i);
    if (existing) return existing;
    if (depth > metas.length) throw new RangeError(`fork cycle at stream ${m.i}`);
    let fork: Stream['fork'];
    if (m.f) {
      const sourceMeta = pending.get(m.f[0]);
      if (!sourceMeta) throw new RangeError(`stream ${m.i} forks unknown stream ${m.f[0]}`);
      const source = restore(sourceMeta, depth + 1);
      source.refs++;
      fork = { source, position: m.f[1], offset: m.f[2], subOffset: m.f[3] };
    }
    const config = {
      contentType: m.ct,
      ttlSeconds: m.ttl,
      expiresAt: m.ex,
      expiresAtText: m.ext,
    };
    const s = new Stream(m.i, m.k, config, fork, now, table.meter);
    s.tail = m.t;
    s.visibleTail = m.t;
    s.bytes = m.b;
    s.closed = s.visibleClosed = m.c === 1;
    if (m.cb) s.closedBy = { id: m.cb[0], epoch: m.cb[1], seq: m.cb[2] };
    if (m.s !== undefined) s.lastStreamSeq = m.s;
    for (const [id, epoch, lastSeq] of m.p ?? []) s.producers.set(id, { epoch, lastSeq });
    s.softDeleted = m.d === 1;
    s.created = true;
    s.loaded = false;
    table.streams.set(s.key, s);
    table.byId.set(s.id, s);
    table.nextId = Math.max(table.nextId, s.id + 1);
    return s;
  };
  for (const m of metas) restore(m, 0);
}

export interface SnapshotFile {
  v: 1;
  storeId: string;
  nextId: number;
  /** Replay starts at the beginning of this segment. */
  segment: number;
  streams: StreamMeta[];
}

/** The checksum of a snapshot frame: its length and body, not the checksum field itself. */
const frameCrc = (buf: Buffer) => crc32c(buf, crc32c(buf, 0, 4, 8), FRAME, buf.length);

/** A snapshot framed like a batch: magic, length, CRC-32C, JSON. */
export function encodeSnapshot(table: StreamTable, storeId: string, segment: number): Buffer {
  const body: SnapshotFile = {
    v: 1,
    storeId,
    nextId: table.nextId,
    segment,
    streams: [...table.byId.values()].map(streamMeta),
  };
  const json = Buffer.from(JSON.stringify(body));
  const buf = Buffer.allocUnsafe(FRAME + json.length);
  buf.writeUInt32BE(MAGIC, 0);
  buf.writeUInt32BE(json.length, 4);
  json.copy(buf, FRAME);
  buf.writeUInt32BE(frameCrc(buf), 8);
  return buf;
}

/** The snapshot in `buf`, or undefined when it is torn or corrupt. */
export function decodeSnapshot(buf: Buffer): SnapshotFile | undefined {
  if (buf.length < FRAME || buf.readUInt32BE(0) !== MAGIC) return undefined;
  const len = buf.readUInt32BE(4);
  if (FRAME + len !== buf.length) return undefined;
  if (frameCrc(buf) !== buf.readUInt32BE(8)) return undefined;
  try {
    const s = JSON.parse(buf.toString('utf8', FRAME)) as SnapshotFile;
    return s.v === 1 && Array.isArray(s.streams) ? s : undefined;
  } catch {
    return undefined;
  }
}
