/**
 * Rows of the postgres backend applied to the local stream objects: a stream's row (its
 * metadata, as the SQLite store keeps it) becomes the state appends are checked against, and
 * its record rows become index entries through `StreamTable.commit` — the same path a local
 * commit takes, so readers waiting on the stream are woken alike.
 */
import { type AppendRecord, EMPTY, T_APPEND } from './codec.js';
import { StorageError } from './errors.js';
import type { StreamMeta } from './snapshot.js';
import { type Fork, Stream } from './stream.js';
import type { StreamTable } from './table.js';

/** A stream's row: bigints arrive as strings. */
export interface StreamRow {
  id: string;
  meta: string;
  refs: number;
  last_access: string;
}

/** An index entry's row (no data): where an append starts, its units, bytes and table. */
export interface RecordRow {
  start: string | null;
  count: number | null;
  bytes: number | null;
  tab: Buffer | null;
}

/** Message tables of multi-message JSON appends, by stream id and start (`Backend.table`). */
export class Tables {
  readonly #byStream = new Map<number, Map<number, Uint32Array>>();
  bytes = 0;

  set(id: number, start: number, table: Uint32Array): void {
    let m = this.#byStream.get(id);
    if (!m) {
      m = new Map();
      this.#byStream.set(id, m);
    }
    if (!m.has(start)) this.bytes += table.byteLength;
    m.set(start, table);
  }

  get(id: number, start: number): Uint32Array | undefined {
    return this.#byStream.get(id)?.get(start);
  }

  drop(id: number): void {
    const m = this.#byStream.get(id);
    if (!m) return;
    for (const t of m.values()) this.bytes -= t.byteLength;
    this.#byStream.delete(id);
  }
}

export const tableOf = (tab: Buffer | null): Uint32Array | undefined => {
  if (!tab || tab.length === 0) return undefined;
  const out = new Uint32Array(tab.length / 4);
  for (let k = 0; k < out.length; k++) out[k] = tab.readUInt32LE(k * 4);
  return out;
};

export const tabBytes = (t: Uint32Array | undefined): Buffer | null => {
  if (!t) return null;
  const b = Buffer.allocUnsafe(t.length * 4);
  for (let k = 0; k < t.length; k++) b.writeUInt32LE(t[k]!, k * 4);
  return b;
};

/** A new local stream object for a row; its fork source resolved by the caller. */
export function streamOf(
  table: StreamTable,
  id: number,
  meta: StreamMeta,
  source: Stream | undefined,
  now: number,
): Stream {
  const fork: Fork | undefined =
    meta.f && source
      ? { source, position: meta.f[1], offset: meta.f[2], subOffset: meta.f[3] }
      : undefined;
  const config = {
    contentType: meta.ct,
    ttlSeconds: meta.ttl,
    expiresAt: meta.ex,
    expiresAtText: meta.ext,
  };
  const s = new Stream(id, meta.k, config, fork, now, table.meter);
  // The last access is the database's (applyMeta): this process seeing it is no access.
  s.lastAccess = 0;
  s.loaded = true;
  table.streams.set(s.key, s);
  table.byId.set(id, s);
  return s;
}

/** The row's state as the checked state (what the next decision sees). */
export function applyMeta(s: Stream, meta: StreamMeta, refs: number, lastAccess: number): void {
  s.tail = meta.t;
  s.bytes = meta.b;
  s.closed = meta.c === 1;
  s.closedBy = meta.cb ? { id: meta.cb[0], epoch: meta.cb[1], seq: meta.cb[2] } : undefined;
  s.lastStreamSeq = meta.s;
  s.producers.clear();
  for (const [id, epoch, lastSeq] of meta.p ?? []) s.producers.set(id, { epoch, lastSeq });
  s.refs = refs;
  s.created = true;
  s.lastAccess = Math.max(s.lastAccess, lastAccess);
  if (meta.d === 1 && !s.softDeleted) {
    s.softDeleted = true;
    s.wake();
  }
}

/**
 * Makes a committed append visible locally (once: one seen already is skipped). False when it
 * starts past the visible tail: appends in between are not here yet, and the index never
 * takes a gap (the caller refreshes the stream from the database instead).
 */
export function commitAppend(
  table: StreamTable,
  tables: Tables,
  s: Stream,
  r: Pick<AppendRecord, 'start' | 'close' | 'payload'>,
): boolean {
  if (r.start > s.visibleTail) return false;
  if (r.start < s.visibleTail || (r.payload.count === 0 && (!r.close || s.visibleClosed)))
    return true;
  if (r.payload.table) tables.set(s.id, r.start, r.payload.table);
  const record: AppendRecord = {
    t: T_APPEND,
    id: s.id,
    start: r.start,
    close: r.close,
    producer: undefined,
    streamSeq: undefined,
    payload: r.payload,
  };
  table.commit(record, s, r.start);
  return true;
}

/** Record rows (ordered by start) up to the row's tail, then its close, made visible. */
export function applyRecords(
  table: StreamTable,
  tables: Tables,
  s: Stream,
  rows: RecordRow[],
  meta: StreamMeta,
): void {
  for (const row of rows) {
    if (row.start === null) continue;
    const start = Number(row.start);
    if (start >= meta.t) break;
    const t = tableOf(row.tab);
    const payload = { chunks: [], bytes: row.bytes!, count: row.count!, table: t };
    if (!commitAppend(table, tables, s, { start, close: false, payload }))
      throw new StorageError(
        'ERR_STORAGE_CORRUPT',
        `stream ${s.id} has no record at ${s.visibleTail}`,
      );
  }
  if (meta.c === 1 && !s.visibleClosed && s.visibleTail >= meta.t)
    commitAppend(table, tables, s, { start: s.visibleTail, close: true, payload: EMPTY });
}

/** Drops a local stream the database no longer has (deleted by another instance). */
export function forget(table: StreamTable, tables: Tables, s: Stream): void {
  if (s.removed) return;
  s.removed = true;
  if (table.streams.get(s.key) === s) table.streams.delete(s.key);
  if (table.byId.get(s.id) === s) table.byId.delete(s.id);
  s.index.release();
  tables.drop(s.id);
  s.wake();
}
