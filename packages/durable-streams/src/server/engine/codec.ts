/**
 * The on-disk format. A group-commit batch is one frame — magic, length, CRC-32C of length and
 * body, record count — around its records (LevelDB writes a WriteBatch as one log record the
 * same way): a batch is on disk whole or not at all, so a torn write is always the last frame,
 * and a bad frame with a good one after it is corruption, not a crash. A record is its length
 * and a payload whose first byte says what it is; its data comes last, after its message
 * table, so an index entry points straight at the bytes a reader wants.
 */
import { crc32c } from './crc32c.js';

export const MAGIC = 0x44534231; // "DSB1"
/** magic u32, body length u32, crc u32, record count u32. */
export const FRAME = 16;
/** Larger payloads are corrupt lengths, not records (the protocol's bodies are far smaller). */
export const MAX_PAYLOAD = 1 << 30;

export const T_CREATE = 1;
export const T_APPEND = 2;
export const T_DELETE = 3;
/** Data moved by compaction: the same entry at a new address. */
export const T_COPY = 4;

const F_CLOSE = 1;
const F_PRODUCER = 2;
const F_SEQ = 4;
const F_TTL = 8;
const F_EXPIRES = 16;
const F_FORK = 32;

/** A stream's data for one record: bytes copied in order, and a message table for JSON. */
export interface Payload {
  /** Pieces concatenated in order (for JSON: messages and the commas between them). */
  chunks: Buffer[];
  /** Total bytes of `chunks`. */
  bytes: number;
  /** Units: bytes for a byte stream, messages for a JSON stream. */
  count: number;
  /** JSON with more than one message: each message's end offset in the data. */
  table: Uint32Array | undefined;
}

export const EMPTY: Payload = { chunks: [], bytes: 0, count: 0, table: undefined };

export interface CreateRecord {
  t: typeof T_CREATE;
  id: number;
  key: string;
  contentType: string;
  closed: boolean;
  ttlSeconds: number | undefined;
  expiresAt: number | undefined;
  expiresAtText: string | undefined;
  fork: { source: number; position: number; offset: number; subOffset: number } | undefined;
  payload: Payload;
}

export interface AppendRecord {
  t: typeof T_APPEND;
  id: number;
  start: number;
  close: boolean;
  producer: { id: string; epoch: number; seq: number } | undefined;
  streamSeq: string | undefined;
  payload: Payload;
}

export interface DeleteRecord {
  t: typeof T_DELETE;
  id: number;
}

export interface CopyRecord {
  t: typeof T_COPY;
  id: number;
  start: number;
  payload: Payload;
}

export type LogRecord = CreateRecord | AppendRecord | DeleteRecord | CopyRecord;

const strLen = (s: string | undefined) => (s === undefined ? 0 : 2 + Buffer.byteLength(s));

/** Bytes of a record's payload before its data tail (fixed fields and strings). */
function headSize(r: LogRecord): number {
  switch (r.t) {
    case T_CREATE:
      return (
        2 +
        4 +
        strLen(r.key) +
        strLen(r.contentType) +
        (r.ttlSeconds !== undefined ? 8 : 0) +
        (r.expiresAt !== undefined ? 8 + strLen(r.expiresAtText ?? '') : 0) +
        (r.fork ? 4 + 24 : 0) +
        8
      );
    case T_APPEND:
      return (
        2 +
        4 +
        8 +
        8 +
        (r.producer ? strLen(r.producer.id) + 16 : 0) +
        (r.streamSeq !== undefined ? strLen(r.streamSeq) : 0)
      );
    case T_DELETE:
      return 2 + 4;
    case T_COPY:
      return 2 + 4 + 8 + 8;
  }
}

const tailSize = (p: Payload) => 4 + (p.table ? p.table.length * 4 : 0) + p.bytes;

/** The size of a record inside a batch (its length prefix included). */
export function recordSize(r: LogRecord): number {
  return 4 + headSize(r) + (r.t === T_DELETE ? 0 : tailSize(r.payload));
}

/** The size of a batch frame holding `records`. */
export function batchSize(records: readonly LogRecord[]): number {
  let n = FRAME;
  for (const r of records) n += recordSize(r);
  return n;
}

/**
 * Writes `records` as one batch frame at `buf[at]`. `dataAt[k]` receives the offset in `buf`
 * of record k's data; returns the end of the frame.
 */
export function encodeBatch(
  buf: Buffer,
  at: number,
  records: readonly LogRecord[],
  dataAt: Float64Array,
): number {
  let p = at + FRAME;
  for (let k = 0; k < records.length; k++) {
    const r = records[k]!;
    const end = encodeRecord(buf, p, r);
    dataAt[k] = r.t === T_DELETE ? Number.NaN : end - r.payload.bytes;
    p = end;
  }
  buf.writeUInt32BE(MAGIC, at);
  buf.writeUInt32BE(p - at - FRAME, at + 4);
  buf.writeUInt32BE(records.length, at + 12);
  buf.writeUInt32BE(crc32c(buf, crc32c(buf, 0, at + 4, at + 8), at + 12, p), at + 8);
  return p;
}

function putStr(buf: Buffer, at: number, s: string): number {
  const n = buf.write(s, at + 2, 'utf8');
  buf.writeUInt16LE(n, at);
  return at + 2 + n;
}

/** Writes `r` (length-prefixed) at `buf[at]`; returns its end, where its data ends too. */
function encodeRecord(buf: Buffer, at: number, r: LogRecord): number {
  let p = at + 4;
  buf[p] = r.t;
  const flagsAt = p + 1;
  let flags = 0;
  p += 2;
  buf.writeUInt32LE(r.id, p);
  p += 4;
  let payload: Payload | undefined;
  if (r.t === T_CREATE) {
    p = putStr(buf, p, r.key);
    p = putStr(buf, p, r.contentType);
    if (r.closed) flags |= F_CLOSE;
    if (r.ttlSeconds !== undefined) {
      flags |= F_TTL;
      buf.writeDoubleLE(r.ttlSeconds, p);
      p += 8;
    }
    if (r.expiresAt !== undefined) {
      flags |= F_EXPIRES;
      buf.writeDoubleLE(r.expiresAt, p);
      p = putStr(buf, p + 8, r.expiresAtText ?? '');
    }
    if (r.fork) {
      flags |= F_FORK;
      buf.writeUInt32LE(r.fork.source, p);
      buf.writeDoubleLE(r.fork.position, p + 4);
      buf.writeDoubleLE(r.fork.offset, p + 12);
      buf.writeDoubleLE(r.fork.subOffset, p + 20);
      p += 28;
    }
    buf.writeDoubleLE(r.payload.count, p);
    p += 8;
    payload = r.payload;
  } else if (r.t === T_APPEND || r.t === T_COPY) {
    buf.writeDoubleLE(r.start, p);
    buf.writeDoubleLE(r.payload.count, p + 8);
    p += 16;
    if (r.t === T_APPEND) {
      if (r.close) flags |= F_CLOSE;
      if (r.producer) {
        flags |= F_PRODUCER;
        p = putStr(buf, p, r.producer.id);
        buf.writeDoubleLE(r.producer.epoch, p);
        buf.writeDoubleLE(r.producer.seq, p + 8);
        p += 16;
      }
      if (r.streamSeq !== undefined) {
        flags |= F_SEQ;
        p = putStr(buf, p, r.streamSeq);
      }
    }
    payload = r.payload;
  }
  buf[flagsAt] = flags;
  if (payload) {
    buf.writeUInt32LE(payload.bytes, p);
    p += 4;
    if (payload.table) {
      for (let i = 0; i < payload.table.length; i++)
        buf.writeUInt32LE(payload.table[i]!, p + i * 4);
      p += payload.table.length * 4;
    }
    for (const c of payload.chunks) {
      buf.set(c, p);
      p += c.length;
    }
  }
  buf.writeUInt32LE(p - at - 4, at);
  return p;
}

export type BadFrame = 'short' | 'magic' | 'length' | 'checksum' | 'payload';

/** What a scan found at an offset: a batch, or why there is none. */
export type Scanned =
  | { ok: true; records: LogRecord[]; data: number[]; end: number }
  | { ok: false; reason: BadFrame };

/**
 * Reads the batch framed at `buf[at]`, checking magic, length and checksum before anything
 * else. Record data are views into `buf`: the caller copies what it keeps.
 */
export function decodeBatch(buf: Buffer, at: number, end = buf.length): Scanned {
  if (at + FRAME > end) return { ok: false, reason: 'short' };
  if (buf.readUInt32BE(at) !== MAGIC) return { ok: false, reason: 'magic' };
  const len = buf.readUInt32BE(at + 4);
  if (len > MAX_PAYLOAD) return { ok: false, reason: 'length' };
  const stop = at + FRAME + len;
  if (stop > end) return { ok: false, reason: 'short' };
  const crc = crc32c(buf, crc32c(buf, 0, at + 4, at + 8), at + 12, stop);
  if (crc !== buf.readUInt32BE(at + 8)) return { ok: false, reason: 'checksum' };
  const count = buf.readUInt32BE(at + 12);
  const records: LogRecord[] = [];
  const data: number[] = [];
  try {
    let p = at + FRAME;
    for (let k = 0; k < count; k++) {
      const rlen = buf.readUInt32LE(p);
      const rend = p + 4 + rlen;
      if (rend > stop) throw new RangeError('record past its batch');
      const parsed = parsePayload(buf, p + 4, rend);
      records.push(parsed.record);
      data.push(parsed.data);
      p = rend;
    }
    if (p !== stop) throw new RangeError('batch length mismatch');
  } catch {
    return { ok: false, reason: 'payload' };
  }
  return { ok: true, records, data, end: stop };
}

function getStr(buf: Buffer, at: number): [string, number] {
  const n = buf.readUInt16LE(at);
  return [buf.toString('utf8', at + 2, at + 2 + n), at + 2 + n];
}

function getTail(buf: Buffer, at: number, stop: number, count: number) {
  const bytes = buf.readUInt32LE(at);
  let p = at + 4;
  let table: Uint32Array | undefined;
  const entries = stop - p - bytes;
  if (entries < 0 || entries % 4 !== 0) throw new RangeError('bad data length');
  if (entries > 0) {
    table = new Uint32Array(entries / 4);
    for (let i = 0; i < table.length; i++) table[i] = buf.readUInt32LE(p + i * 4);
    p += entries;
  }
  // The data is a view into the scanned buffer: the caller copies what it keeps.
  const payload: Payload = {
    chunks: bytes ? [buf.subarray(p, p + bytes)] : [],
    bytes,
    count,
    table,
  };
  return { payload, data: p };
}

function parsePayload(buf: Buffer, at: number, stop: number): { record: LogRecord; data: number } {
  const t = buf[at]!;
  const flags = buf[at + 1]!;
  const id = buf.readUInt32LE(at + 2);
  let p = at + 6;
  if (t === T_DELETE) return { record: { t, id }, data: stop };
  if (t === T_CREATE) {
    let key: string;
    let contentType: string;
    [key, p] = getStr(buf, p);
    [contentType, p] = getStr(buf, p);
    let ttlSeconds: number | undefined;
    let expiresAt: number | undefined;
    let expiresAtText: string | undefined;
    let fork: CreateRecord['fork'];
    if (flags & F_TTL) {
      ttlSeconds = buf.readDoubleLE(p);
      p += 8;
    }
    if (flags & F_EXPIRES) {
      expiresAt = buf.readDoubleLE(p);
      [expiresAtText, p] = getStr(buf, p + 8);
      if (expiresAtText === '') expiresAtText = undefined; // written as '' when there was none
    }
    if (flags & F_FORK) {
      fork = {
        source: buf.readUInt32LE(p),
        position: buf.readDoubleLE(p + 4),
        offset: buf.readDoubleLE(p + 12),
        subOffset: buf.readDoubleLE(p + 20),
      };
      p += 28;
    }
    const count = buf.readDoubleLE(p);
    const { payload, data } = getTail(buf, p + 8, stop, count);
    const closed = (flags & F_CLOSE) !== 0;
    const record: CreateRecord = {
      t,
      id,
      key,
      contentType,
      closed,
      ttlSeconds,
      expiresAt,
      expiresAtText,
      fork,
      payload,
    };
    return { record, data };
  }
  if (t === T_APPEND || t === T_COPY) {
    const start = buf.readDoubleLE(p);
    const count = buf.readDoubleLE(p + 8);
    p += 16;
    let producer: AppendRecord['producer'];
    let streamSeq: string | undefined;
    if (t === T_APPEND && flags & F_PRODUCER) {
      let pid: string;
      [pid, p] = getStr(buf, p);
      producer = { id: pid, epoch: buf.readDoubleLE(p), seq: buf.readDoubleLE(p + 8) };
      p += 16;
    }
    if (t === T_APPEND && flags & F_SEQ) [streamSeq, p] = getStr(buf, p);
    const { payload, data } = getTail(buf, p, stop, count);
    if (t === T_COPY) return { record: { t, id, start, payload }, data };
    const close = (flags & F_CLOSE) !== 0;
    return { record: { t, id, start, close, producer, streamSeq, payload }, data };
  }
  throw new RangeError(`unknown record type ${t}`);
}
