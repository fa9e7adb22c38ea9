/**
 * The in-memory model of Durable Streams: streams of entries addressed by position. For byte
 * streams a position is a byte count; for JSON streams it is a message count. An offset is
 * `<segment>_<position>`, both zero-padded to 16 digits (the reference server's shape; the
 * segment is always 0 here), so offsets sort lexicographically and never collide with the
 * sentinels `-1` and `now`.
 */

const SEGMENT = '0000000000000000';
export const formatOffset = (position: number): string =>
  `${SEGMENT}_${String(position).padStart(16, '0')}`;
const OFFSET_RE = /^\d{16}_(\d{16})$/;

/** Parses a client offset: `-1` → 0, `now` → 'now', a minted offset → its position. */
export function parseOffset(value: string): number | 'now' | undefined {
  if (value === '-1') return 0;
  if (value === 'now') return 'now';
  const match = OFFSET_RE.exec(value);
  if (!match) return undefined;
  const n = Number(match[1]);
  return Number.isSafeInteger(n) ? n : undefined;
}

export interface Entry {
  /** Position of the entry's first unit. */
  start: number;
  /** Stored bytes (for JSON streams: one message's JSON text). */
  data: Buffer;
  /** Position just after the append this entry came with: the next data boundary. */
  batchEnd: number;
}

export interface ProducerState {
  epoch: number;
  lastSeq: number;
}

export interface StreamState {
  path: string;
  /** Internal id, part of ETags; a re-created path gets a new one. */
  id: string;
  contentType: string;
  json: boolean;
  ttlSeconds: number | undefined;
  expiresAt: number | undefined;
  expiresAtText: string | undefined;
  lastAccess: number;
  closed: boolean;
  /** The producer tuple whose append closed the stream, for idempotent retries. */
  closedBy: { id: string; epoch: number; seq: number } | undefined;
  entries: Entry[];
  /** Next position: bytes or messages written so far. */
  tail: number;
  /** Bytes held, for limits. */
  bytes: number;
  lastStreamSeq: string | undefined;
  producers: Map<string, ProducerState>;
  /** Woken on every append and on close. */
  waiters: Set<() => void>;
  /** For a fork: the source's key and the divergence point (offset and sub-offset). */
  fork: { source: string; offset: number; subOffset: number } | undefined;
  /** Forks that copied data from this stream and are still alive. */
  refs: number;
  /** Deleted while forks still reference it: 410 to clients, kept for the forks. */
  softDeleted: boolean;
}

export function isJsonType(contentType: string): boolean {
  return contentType.split(';')[0]!.trim().toLowerCase() === 'application/json';
}

export function isTextual(contentType: string): boolean {
  const base = contentType.split(';')[0]!.trim().toLowerCase();
  return base.startsWith('text/') || base === 'application/json';
}

/** The part of a content type that must match: the media type, case-insensitively. */
export const mediaType = (contentType: string): string =>
  contentType.split(';')[0]!.trim().toLowerCase();

/** Entries from `position` on, at most `maxBytes` (at least one entry). */
export function entriesFrom(
  stream: StreamState,
  position: number,
  maxBytes: number,
): { entries: Entry[]; end: number } {
  const list = stream.entries;
  // Binary search for the first entry that ends after `position`.
  let lo = 0;
  let hi = list.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    const e = list[mid]!;
    const end = e.start + (stream.json ? 1 : e.data.length);
    if (end <= position) lo = mid + 1;
    else hi = mid;
  }
  const out: Entry[] = [];
  let size = 0;
  let end = position;
  for (let i = lo; i < list.length; i++) {
    let e = list[i]!;
    if (!stream.json && e.start < position) {
      e = { start: position, data: e.data.subarray(position - e.start), batchEnd: e.batchEnd };
    }
    if (out.length > 0 && size + e.data.length > maxBytes) break;
    out.push(e);
    size += e.data.length;
    end = e.start + (stream.json ? 1 : e.data.length);
  }
  return { entries: out, end };
}

/** Appends units to a stream and wakes its readers. */
export function appendEntries(stream: StreamState, units: Buffer[]): void {
  const batchEnd =
    stream.tail + (stream.json ? units.length : units.reduce((n, u) => n + u.length, 0));
  for (const data of units) {
    stream.entries.push({ start: stream.tail, data, batchEnd });
    stream.tail += stream.json ? 1 : data.length;
    stream.bytes += data.length;
  }
  wake(stream);
}

/**
 * Copies `source`'s data up to `position` into `fork` (copy-on-fork: entries are immutable, so
 * only references are copied; a byte entry cut by the position is sliced).
 */
export function inherit(fork: StreamState, source: StreamState, position: number): void {
  for (const e of source.entries) {
    if (e.start >= position) break;
    const units = source.json ? 1 : e.data.length;
    const kept =
      e.start + units <= position
        ? e
        : { start: e.start, data: e.data.subarray(0, position - e.start), batchEnd: position };
    fork.entries.push(kept);
    fork.bytes += kept.data.length;
  }
  fork.tail = position;
}

/** The end of the append that starts at (or contains) `position`: the next data boundary. */
export function nextBoundary(stream: StreamState, position: number): number {
  for (const e of stream.entries) {
    const units = stream.json ? 1 : e.data.length;
    if (e.start <= position && position < e.start + units) return e.batchEnd;
    if (e.start > position) break;
  }
  return position;
}

export function wake(stream: StreamState): void {
  if (stream.waiters.size === 0) return;
  const waiters = [...stream.waiters];
  stream.waiters.clear();
  for (const w of waiters) w();
}

/** Whether a stream has expired at `now` (sliding TTL or absolute expiry). */
export function expired(stream: StreamState, now: number): boolean {
  if (stream.expiresAt !== undefined && now >= stream.expiresAt) return true;
  if (stream.ttlSeconds !== undefined && now - stream.lastAccess >= stream.ttlSeconds * 1000)
    return true;
  return false;
}

let ids = 0;

export function newStream(
  path: string,
  init: Pick<StreamState, 'contentType' | 'ttlSeconds' | 'expiresAt' | 'expiresAtText'>,
  now: number,
): StreamState {
  return {
    path,
    id: `${Date.now().toString(36)}${(ids++).toString(36)}`,
    ...init,
    json: isJsonType(init.contentType),
    lastAccess: now,
    closed: false,
    closedBy: undefined,
    entries: [],
    tail: 0,
    bytes: 0,
    lastStreamSeq: undefined,
    producers: new Map(),
    waiters: new Set(),
    fork: undefined,
    refs: 0,
    softDeleted: false,
  };
}

/** The JSON messages in a body: an array is flattened one level; anything else is one message. */
export function jsonMessages(body: Buffer): Buffer[] | 'invalid' | 'empty-array' {
  let value: unknown;
  try {
    value = JSON.parse(body.toString('utf8'));
  } catch {
    return 'invalid';
  }
  if (Array.isArray(value)) {
    if (value.length === 0) return 'empty-array';
    return value.map((v) => Buffer.from(JSON.stringify(v)));
  }
  return [Buffer.from(JSON.stringify(value))];
}

interface CachedRead {
  position: number;
  /** The stream's tail when the body was built: same position and tail, same range. */
  tail: number;
  end: number;
  body: Buffer;
  /** The ETag of the range, unquoted, before any closed-stream suffix. */
  etagBase: string;
}

/**
 * Bodies of recent catch-up reads, one per stream, least recently used evicted first within a
 * byte budget. A range of an append-only stream never changes, so a body built once serves
 * every reader that asks for the same range — the fan-out case, where many clients catch up
 * from the same offsets — without gathering its entries again.
 */
export class ReadCache {
  readonly #entries = new Map<StreamState, CachedRead>();
  #bytes = 0;

  constructor(readonly budget: number) {}

  get(stream: StreamState, position: number): CachedRead | undefined {
    const hit = this.#entries.get(stream);
    if (!hit || hit.position !== position || hit.tail !== stream.tail) return undefined;
    this.#entries.delete(stream);
    this.#entries.set(stream, hit);
    return hit;
  }

  set(stream: StreamState, read: CachedRead): void {
    this.delete(stream);
    if (read.body.length > this.budget) return;
    for (const [s, old] of this.#entries) {
      if (this.#bytes + read.body.length <= this.budget) break;
      this.#entries.delete(s);
      this.#bytes -= old.body.length;
    }
    this.#entries.set(stream, read);
    this.#bytes += read.body.length;
  }

  delete(stream: StreamState): void {
    const old = this.#entries.get(stream);
    if (!old) return;
    this.#entries.delete(stream);
    this.#bytes -= old.body.length;
  }

  /** Bytes held. */
  get bytes(): number {
    return this.#bytes;
  }
}
