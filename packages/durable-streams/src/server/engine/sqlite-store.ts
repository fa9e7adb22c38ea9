/**
 * `acid`: SQLite (better-sqlite3) in WAL mode with `synchronous = FULL`. Each group-commit
 * batch is one transaction, run in a worker thread so its fsync never stalls the event loop;
 * the main thread reads through a connection of its own (WAL readers never wait for the
 * writer). The bytes live in the database, one row per append; the streams' metadata one row
 * per stream, rewritten by the batch that changed it — so start-up reads the streams table
 * only, whatever the history.
 */
import { randomUUID } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { TowerlineError } from '@towerline/core';
import type { Backend, Part, Write, WriteDone } from './backend.js';
import { T_APPEND, T_CREATE, T_DELETE } from './codec.js';
import { StorageError } from './errors.js';
import { restoreStreams, type StreamMeta, streamMeta } from './snapshot.js';
import type { Stream } from './stream.js';
import type { StreamTable } from './table.js';

interface Statement {
  run(...a: unknown[]): unknown;
  get(...a: unknown[]): unknown;
  all(...a: unknown[]): unknown[];
  pluck(on?: boolean): Statement;
  raw(on?: boolean): Statement;
}
interface Db {
  pragma(s: string): unknown;
  exec(s: string): void;
  prepare(s: string): Statement;
  close(): void;
}

// An append is one row per MiB piece: SQLite reads a blob whole (substr and length included),
// so a read of a few megabytes of a 48 MiB append must not touch the rest of it.
const SCHEMA = `
CREATE TABLE IF NOT EXISTS store (k TEXT PRIMARY KEY, v TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS streams (id INTEGER PRIMARY KEY, meta TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS records (
  id INTEGER PRIMARY KEY, stream INTEGER NOT NULL, start INTEGER NOT NULL,
  piece INTEGER NOT NULL, len INTEGER NOT NULL, tab BLOB, data BLOB NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS records_key ON records (stream, start, piece);`;

/** Bytes per row of an append's data. */
export const PIECE = 1024 * 1024;

// The writer, as plain JavaScript: a worker evaluated from a string runs the same under tsx,
// vitest and the built package, with no loader of its own.
const WORKER = `
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.driver);
const db = new Database(workerData.path);
db.pragma('journal_mode = WAL');
db.pragma('synchronous = FULL');
const buf = (u) => (u ? Buffer.from(u.buffer, u.byteOffset, u.byteLength) : null);
const putRec = db.prepare('INSERT OR REPLACE INTO records (stream, start, piece, len, tab, data) VALUES (?, ?, ?, ?, ?, ?)');
const delRecs = db.prepare('DELETE FROM records WHERE stream = ?');
const delMeta = db.prepare('DELETE FROM streams WHERE id = ?');
const putMeta = db.prepare('INSERT OR REPLACE INTO streams (id, meta) VALUES (?, ?)');
const putNext = db.prepare("INSERT OR REPLACE INTO store (k, v) VALUES ('next_id', ?)");
const run = db.transaction((b) => {
  for (const op of b.ops) {
    if (op[0] === 0) putRec.run(op[1], op[2], op[3], op[4], buf(op[5]), buf(op[6]));
    else { delRecs.run(op[1]); delMeta.run(op[1]); }
  }
  for (const m of b.metas) putMeta.run(m[0], m[1]);
  putNext.run(String(b.nextId));
});
parentPort.on('message', (b) => {
  if (b === 'close') { db.close(); parentPort.postMessage('closed'); return; }
  try { run(b); parentPort.postMessage({ id: b.id }); }
  catch (e) { parentPort.postMessage({ id: b.id, error: String((e && e.message) || e) }); }
});
`;

const here = typeof __filename === 'string' ? __filename : fileURLToPath(import.meta.url);

/** [0, stream, start, piece, length, table, data] | [1, stream] (delete). */
type Op = [0, number, number, number, number, Uint8Array | null, Uint8Array] | [1, number];

export class SqliteStore implements Backend {
  readonly #db: Db;
  readonly #worker: Worker;
  readonly #pending = new Map<number, { done: WriteDone; addrs: Float64Array }>();
  #seq = 0;
  #failed: Error | undefined;
  readonly #range: Statement;
  readonly #pieces: Statement;
  readonly #tab: Statement;
  readonly #entries: Statement;

  constructor(
    db: Db,
    worker: Worker,
    private readonly tableRef: StreamTable,
    readonly storeId: string,
  ) {
    this.#db = db;
    this.#worker = worker;
    this.#range = db.prepare(
      'SELECT start, data FROM records WHERE stream = ? AND start >= ? AND start <= ? AND piece = 0 ORDER BY start',
    );
    this.#pieces = db
      .prepare(
        'SELECT data FROM records WHERE stream = ? AND start = ? AND piece >= ? AND piece <= ? ORDER BY piece',
      )
      .pluck();
    this.#tab = db
      .prepare('SELECT tab FROM records WHERE stream = ? AND start = ? AND piece = 0')
      .pluck();
    this.#entries = db
      .prepare('SELECT start, len FROM records WHERE stream = ? AND piece = 0 ORDER BY start')
      .raw();
    worker.on('message', (m: { id: number; error?: string } | 'closed') => {
      if (m === 'closed') return;
      const p = this.#pending.get(m.id);
      this.#pending.delete(m.id);
      if (!p) return;
      if (m.error) {
        this.#failed = new StorageError('ERR_STORAGE_FAILED', `SQLite: ${m.error}`);
        p.done(this.#failed, undefined);
      } else p.done(null, p.addrs);
    });
    worker.on('error', (error) => {
      this.#failed = new StorageError('ERR_STORAGE_FAILED', 'the SQLite writer died', {
        cause: error,
      });
      for (const p of this.#pending.values()) p.done(this.#failed, undefined);
      this.#pending.clear();
    });
  }

  write(batch: Write[], done: WriteDone): void {
    if (this.#failed) {
      done(this.#failed, undefined);
      return;
    }
    const ops: Op[] = [];
    const touched = new Set<Stream>();
    const addrs = new Float64Array(batch.length);
    batch.forEach(({ record: r, stream }, k) => {
      addrs[k] = Number.NaN;
      if (r.t === T_DELETE) {
        // A delete may have taken sources that only its forks kept (the cascade).
        for (let d: Stream | undefined = stream; d?.removed; d = d.fork?.source) {
          ops.push([1, d.id]);
          touched.delete(d);
        }
        if (!stream.removed) touched.add(stream); // soft-deleted: its row says so
        return;
      }
      if (r.t === T_CREATE || r.t === T_APPEND) touched.add(stream);
      if (r.payload.count === 0) return;
      const start = r.t === T_CREATE ? (stream.fork?.position ?? 0) : r.start;
      const p = r.payload;
      const data = p.chunks.length === 1 ? p.chunks[0]! : Buffer.concat(p.chunks, p.bytes);
      const tab = p.table
        ? new Uint8Array(p.table.buffer, p.table.byteOffset, p.table.byteLength)
        : null;
      for (let at = 0, piece = 0; at < data.length; at += PIECE, piece++) {
        const slice = data.subarray(at, at + PIECE);
        ops.push([0, r.id, start, piece, p.bytes, piece === 0 ? tab : null, slice]);
      }
      addrs[k] = start;
    });
    // The checked state now is the state after this batch: what the rows must say.
    const metas = [...touched]
      .filter((s) => !s.removed)
      .map((s): [number, string] => [s.id, JSON.stringify(streamMeta(s))]);
    const id = ++this.#seq;
    this.#pending.set(id, { done, addrs });
    this.#worker.postMessage({ id, ops, metas, nextId: this.tableRef.nextId });
  }

  read(parts: Part[]): Buffer[] {
    const out: Buffer[] = new Array(parts.length);
    let k = 0;
    while (k < parts.length) {
      // A run of consecutive entries of one stream: one range query.
      const { owner } = parts[k]!;
      let h = k + 1;
      while (h < parts.length && parts[h]!.owner === owner && parts[h]!.i === parts[h - 1]!.i + 1)
        h++;
      const idx = owner.index;
      if (h - k === 1) {
        // One entry, perhaps a slice of a large one: only the pieces it spans leave SQLite.
        const p = parts[k]!;
        const start = idx.addr(p.i);
        const first = Math.floor(p.from / PIECE);
        const last = Math.floor((p.to - 1) / PIECE);
        const rows = this.#pieces.all(owner.id, start, first, last) as Buffer[];
        if (rows.length !== last - first + 1) this.#row(undefined, owner, start);
        const joined = rows.length === 1 ? rows[0]! : Buffer.concat(rows);
        out[k] = joined.subarray(p.from - first * PIECE, p.to - first * PIECE);
      } else {
        const rows = this.#range.all(
          owner.id,
          idx.addr(parts[k]!.i),
          idx.addr(parts[h - 1]!.i),
        ) as Array<{
          start: number;
          data: Buffer;
        }>;
        const byStart = new Map(rows.map((r) => [r.start, r.data]));
        for (let x = k; x < h; x++) {
          const p = parts[x]!;
          const data = byStart.get(idx.addr(p.i));
          // A run is of small entries; one larger than a piece is read on its own.
          out[x] =
            data && p.to <= data.length ? data.subarray(p.from, p.to) : this.read([{ ...p }])[0]!;
        }
      }
      k = h;
    }
    return out;
  }

  #row(data: unknown, owner: Stream, start: number): Buffer {
    if (!Buffer.isBuffer(data))
      throw new StorageError('ERR_STORAGE_CORRUPT', `stream ${owner.id} has no row at ${start}`);
    return data;
  }

  table(owner: Stream, i: number, count: number): Uint32Array {
    const tab = this.#tab.get(owner.id, owner.index.addr(i)) as Buffer | null;
    const out = new Uint32Array(count);
    for (let k = 0; k < count; k++) out[k] = tab ? tab.readUInt32LE(k * 4) : 0;
    return out;
  }

  loadIndex(stream: Stream): void {
    const rows = this.#entries.all(stream.id) as Array<[number, number]>;
    const idx = stream.index;
    const starts = Float64Array.from(rows, (r) => r[0]);
    const lens = Uint32Array.from(rows, (r) => r[1]);
    idx.replace(starts, Float64Array.from(starts), lens);
    stream.loaded = true;
  }

  dropped(): void {}

  get memory(): number {
    return 0;
  }

  get storedInMemory(): number {
    return 0;
  }

  async close(): Promise<void> {
    const closed = new Promise<void>((resolve) =>
      this.#worker.on('message', (m) => m === 'closed' && resolve()),
    );
    this.#worker.postMessage('close');
    await closed;
    await this.#worker.terminate();
    this.#db.close();
  }
}

/**
 * Where better-sqlite3 is installed. It is an optional peer dependency (a native build few
 * users need), so its absence is a clear error naming the install command.
 */
export function resolveDriver(specifier: string): string {
  try {
    return createRequire(here).resolve(specifier);
  } catch (cause) {
    throw new TowerlineError(
      'ERR_DEPENDENCY_MISSING',
      `storage mode acid needs the optional dependency ${specifier}: npm install ${specifier}`,
      { cause, parameter: 'storage.mode' },
    );
  }
}

/** Opens (or creates) `streams.sqlite` in `dir` and restores the stream table from it. */
export async function openSqlite(
  dir: string,
  table: StreamTable,
  now: number,
): Promise<SqliteStore> {
  mkdirSync(dir, { recursive: true });
  // Loaded only in acid mode; a variable specifier keeps it an optional native dependency.
  const specifier = 'better-sqlite3';
  const driver = resolveDriver(specifier);
  const mod = (await import(specifier)) as unknown as { default: new (path: string) => Db };
  const path = join(dir, 'streams.sqlite');
  const db = new mod.default(path);
  // Larger pages: shorter overflow chains for the megabyte pieces (only a new file takes it).
  db.pragma('page_size = 16384');
  db.pragma('journal_mode = WAL');
  db.exec(SCHEMA);
  const get = (k: string) =>
    db.prepare('SELECT v FROM store WHERE k = ?').pluck().get(k) as string | undefined;
  let storeId = get('store_id');
  if (!storeId) {
    storeId = randomUUID().slice(0, 8);
    db.prepare("INSERT INTO store (k, v) VALUES ('store_id', ?)").run(storeId);
  }
  const metas = (db.prepare('SELECT meta FROM streams').pluck().all() as string[]).map(
    (m) => JSON.parse(m) as StreamMeta,
  );
  restoreStreams(table, metas, now);
  table.nextId = Math.max(table.nextId, Number(get('next_id') ?? 1));
  db.pragma('query_only = true');
  const worker = new Worker(WORKER, { eval: true, workerData: { driver, path } });
  worker.unref();
  return new SqliteStore(db, worker, table, storeId);
}
