/**
 * `postgres`: several server processes share one PostgreSQL database. Each keeps local stream
 * objects (configuration, checked state, index — never the data) as a cache, refreshed from
 * the database before a request is served; every change is one transaction that locks the
 * stream's row (`FOR UPDATE`), decides against the state it reads there, writes the record
 * and the new row, and `NOTIFY`s the other instances, whose live readers are woken through
 * the same commit path as local ones. Appends queued for one stream meanwhile share the next
 * transaction (group commit). The connections run under towerline's reconnect engine: a
 * database restart or outage is waited out, not fatal.
 */
import { randomUUID } from 'node:crypto';
import type { ResilientPgPool } from '@towerline/pg';
import type pg from 'pg';
import type { Backend, Part, Write, WriteDone } from './backend.js';
import type { AppendRecord, CreateRecord } from './codec.js';
import { StorageError } from './errors.js';
import { AccessLog } from './pg-access.js';
import {
  readParts,
  retryingTransaction,
  storageError,
  writeAppends,
  writeCreate,
  writeDelete,
} from './pg-io.js';
import type { ListenHost, PgListener } from './pg-listen.js';
import {
  applyMeta,
  applyRecords,
  commitAppend,
  forget,
  type RecordRow,
  type StreamRow,
  streamOf,
  Tables,
} from './pg-rows.js';
import {
  EXPIRED,
  LOCK_BY_ID,
  LOCK_CHAIN,
  LOCK_KEY,
  RECORDS_BETWEEN,
  SYNC_BY_ID,
  SYNC_BY_KEY,
  TOUCH,
} from './pg-schema.js';
import { KeyedSerial } from './serial.js';
import { type Decision, type SharedDone, type SharedStore, specOf } from './shared.js';
import type { StreamMeta } from './snapshot.js';
import type { Stream } from './stream.js';
import type { StreamTable } from './table.js';

type Q = (text: string, values?: unknown[]) => Promise<Array<Record<string, unknown>>>;
type SyncRow = StreamRow & RecordRow;
interface Pending<D> {
  decide: () => D;
  done: SharedDone<D>;
}

const rowsOf =
  (c: pg.ClientBase): Q =>
  async (text, values) =>
    (await c.query(text, values)).rows;

export class PgStore implements Backend, SharedStore, ListenHost {
  readonly #serial = new KeyedSerial();
  readonly #appends = new Map<string, Pending<Decision>[]>();
  readonly #tables = new Tables();
  readonly #instance = randomUUID().slice(0, 8);
  readonly #channel: string;
  readonly #access: AccessLog;
  readonly #q: Q;
  #inFlight = 0;
  #idle: (() => void) | undefined;
  #closed = false;

  constructor(
    private readonly pool: ResilientPgPool,
    private readonly listener: PgListener,
    private readonly streams: StreamTable,
    readonly schema: string,
    readonly storeId: string,
    private readonly now: () => number,
    private readonly warn: ((message: string, fields: Record<string, unknown>) => void) | undefined,
  ) {
    this.#channel = `ds_${schema}`;
    this.#q = async (text, values) => (await pool.query(text, values)).rows;
    this.#access = new AccessLog((ids, at) => this.#tracked(() => this.#q(TOUCH, [ids, at])));
  }

  /** A `NOTIFY` from another instance: the stream changed there. */
  noted(payload: string): void {
    const [id, from] = payload.split(':');
    if (from === this.#instance) return;
    const s = this.streams.byId.get(Number(id));
    if (s) this.#background(this.sync(s.key));
  }

  /**
   * Re-reads every stream someone waits on: notifications may have been missed (the `LISTEN`
   * connection came back, or is still down). Rejects with the first failure, after all ran.
   */
  async catchUp(): Promise<void> {
    if (this.#closed) return;
    const work: Promise<void>[] = [];
    for (const s of this.streams.byId.values()) if (s.waiters.size > 0) work.push(this.sync(s.key));
    const failed = (await Promise.allSettled(work)).find((r) => r.status === 'rejected');
    if (failed) throw failed.reason;
  }

  #background(p: Promise<unknown>): void {
    // The SQLSTATE only: a driver's message may quote the values of the statement.
    p.catch((error: unknown) =>
      this.warn?.('postgres refresh failed', { 'error.message': storageError(error).message }),
    );
  }

  async #tracked<T>(work: () => Promise<T>): Promise<T> {
    this.#inFlight++;
    try {
      return await work();
    } finally {
      if (--this.#inFlight === 0) this.#idle?.();
    }
  }

  #tx<T>(run: (c: pg.ClientBase) => Promise<T>): Promise<T> {
    return retryingTransaction(this.pool, run);
  }

  // ---- refreshing the local copy

  sync(key: string): Promise<void> {
    return this.#serial.refresh(key, () =>
      this.#tracked(() => this.#syncKey(this.#q, key)).then(
        () => {},
        (e) => {
          throw storageError(e);
        },
      ),
    );
  }

  async #syncKey(q: Q, key: string): Promise<Stream | undefined> {
    const local = this.streams.streams.get(key);
    const rows = (await q(SYNC_BY_KEY, [
      key,
      local?.id ?? -1,
      local ? local.visibleTail : -1,
    ])) as unknown as SyncRow[];
    return this.#apply(q, rows, local);
  }

  async #syncId(q: Q, id: number): Promise<Stream | undefined> {
    const local = this.streams.byId.get(id);
    const from = local ? local.visibleTail : -1;
    const rows = (await q(SYNC_BY_ID, [id, from])) as unknown as SyncRow[];
    return this.#apply(q, rows, local);
  }

  async #apply(q: Q, rows: SyncRow[], local: Stream | undefined): Promise<Stream | undefined> {
    const head = rows[0];
    if (!head) {
      if (local) forget(this.streams, this.#tables, local);
      return undefined;
    }
    const id = Number(head.id);
    const meta = JSON.parse(head.meta) as StreamMeta;
    let s = local && local.id === id && !local.removed ? local : undefined;
    if (local && !s) forget(this.streams, this.#tables, local);
    if (!s) {
      let source: Stream | undefined;
      if (meta.f) {
        source = await this.#syncId(q, meta.f[0]);
        if (!source)
          throw new StorageError('ERR_STORAGE_CORRUPT', `stream ${id} forks a missing stream`);
      }
      s = streamOf(this.streams, id, meta, source, this.now());
    }
    applyMeta(s, meta, head.refs, Number(head.last_access));
    applyRecords(this.streams, this.#tables, s, rows, meta);
    this.#access.refreshed(s);
    return s;
  }

  /** Inside a change's transaction: the locked row, and the records others wrote before it. */
  async #lockedState(c: pg.ClientBase, s: Stream, row: StreamRow): Promise<void> {
    const meta = JSON.parse(row.meta) as StreamMeta;
    if (meta.t > s.visibleTail) {
      const { rows } = await c.query(RECORDS_BETWEEN, [s.id, s.visibleTail, meta.t]);
      applyRecords(this.streams, this.#tables, s, rows as RecordRow[], { ...meta, c: undefined });
    }
    applyMeta(s, meta, row.refs, Number(row.last_access));
    applyRecords(this.streams, this.#tables, s, [], meta);
  }

  // ---- changes

  append<D extends Decision>(stream: Stream, decide: () => D, done: SharedDone<D>): void {
    const key = stream.key;
    const open = this.#appends.get(key);
    if (open) {
      open.push({ decide, done } as unknown as Pending<Decision>);
      return;
    }
    const batch: Pending<Decision>[] = [{ decide, done } as unknown as Pending<Decision>];
    this.#appends.set(key, batch);
    void this.#serial.run(key, () => {
      if (this.#appends.get(key) === batch) this.#appends.delete(key);
      return this.#tracked(() => this.#appendBatch(stream, batch));
    });
  }

  async #appendBatch(stream: Stream, batch: Pending<Decision>[]): Promise<void> {
    type Out = { results: Array<{ decision: Decision; tail: number }>; records: AppendRecord[] };
    let out: Out | undefined;
    try {
      out = await this.#tx(async (c): Promise<Out | undefined> => {
        const { rows } = await c.query(LOCK_BY_ID, [stream.id]);
        if (rows.length === 0) return undefined;
        await this.#lockedState(c, stream, rows[0] as StreamRow);
        const results: Out['results'] = [];
        const records: AppendRecord[] = [];
        for (const p of batch) {
          const decision = p.decide();
          const spec = specOf.append(decision);
          if (spec) records.push(this.streams.append(stream, spec));
          results.push({ decision, tail: stream.tail });
        }
        if (records.length > 0)
          await writeAppends(c, this.#channel, this.#note(stream.id), stream, records);
        return { results, records };
      });
    } catch (error) {
      const e = storageError(error);
      for (const p of batch) p.done(e);
      return;
    }
    if (!out) {
      forget(this.streams, this.#tables, stream);
      for (const p of batch) p.done(null, 'gone');
      return;
    }
    let gap = false;
    for (const r of out.records)
      if (!gap) gap = !commitAppend(this.streams, this.#tables, stream, r);
    if (gap) {
      this.warn?.('postgres: an append was made visible out of order; refreshing', {
        'stream.id': stream.id,
      });
      this.#background(this.sync(stream.key));
    }
    for (let k = 0; k < batch.length; k++) batch[k]!.done(null, out.results[k]);
  }

  #note(id: number): string {
    return `${id}:${this.#instance}`;
  }

  create<D extends Decision>(
    key: string,
    sourceKey: string | undefined,
    decide: () => D,
    done: SharedDone<D>,
  ): void {
    void this.#serial.run(key, () =>
      this.#tracked(() => this.#create(key, sourceKey, decide, done)),
    );
  }

  async #create<D extends Decision>(
    key: string,
    sourceKey: string | undefined,
    decide: () => D,
    done: SharedDone<D>,
  ): Promise<void> {
    type Out = { decision: D; made: { stream: Stream; record: CreateRecord } | undefined };
    let out: Out;
    try {
      out = await this.#tx(async (c): Promise<Out> => {
        const q = rowsOf(c);
        await c.query(LOCK_KEY, [`${this.schema}/${key}`]);
        const existing = await this.#syncKey(q, key);
        // An expired stream in the way is deleted first, under the same lock.
        if (existing && !existing.softDeleted && existing.expired(this.now()))
          await this.#delete(c, existing, true);
        if (sourceKey !== undefined && sourceKey !== key) {
          await c.query('SELECT 1 FROM ds_streams WHERE key = $1 FOR UPDATE', [sourceKey]);
          await this.#syncKey(q, sourceKey);
        }
        const decision = decide();
        const spec = specOf.create(decision);
        if (!spec) return { decision, made: undefined };
        const { rows } = await c.query("SELECT nextval('ds_stream_ids') AS id");
        const made = this.streams.create(spec, this.now(), Number(rows[0]!.id));
        await writeCreate(
          c,
          this.#channel,
          this.#note(made.stream.id),
          this.now(),
          made.stream,
          made.record,
        );
        return { decision, made };
      });
    } catch (error) {
      const s = this.streams.streams.get(key);
      if (s && !s.created) this.#unmake(s);
      done(storageError(error));
      return;
    }
    if (out.made) {
      const { stream, record } = out.made;
      if (record.payload.table)
        this.#tables.set(stream.id, stream.fork?.position ?? 0, record.payload.table);
      this.streams.commit(record, stream, stream.fork?.position ?? 0);
    }
    done(null, { decision: out.decision, tail: out.made?.stream.tail ?? 0 });
  }

  /** Takes back a create whose transaction failed. */
  #unmake(s: Stream): void {
    if (s.fork) s.fork.source.refs--;
    forget(this.streams, this.#tables, s);
  }

  delete(stream: Stream, ifExpired: boolean, done: (error: Error | null) => void): void {
    void this.#serial.run(stream.key, () =>
      this.#tracked(async () => {
        try {
          await this.#tx((c) => this.#delete(c, stream, ifExpired));
          done(null);
        } catch (error) {
          done(storageError(error));
        }
      }),
    );
  }

  async #delete(c: pg.ClientBase, stream: Stream, ifExpired: boolean): Promise<void> {
    const chain: Stream[] = [];
    for (let s: Stream | undefined = stream; s; s = s.fork?.source) chain.push(s);
    const { rows } = await c.query(LOCK_CHAIN, [chain.map((s) => s.id)]);
    const byId = new Map((rows as StreamRow[]).map((r) => [Number(r.id), r]));
    if (!byId.has(stream.id)) {
      forget(this.streams, this.#tables, stream);
      return;
    }
    for (const s of chain) {
      const r = byId.get(s.id);
      if (r) applyMeta(s, JSON.parse(r.meta) as StreamMeta, r.refs, Number(r.last_access));
    }
    if (ifExpired && !stream.expired(this.now())) return;
    if (stream.softDeleted) return;
    this.streams.delete(stream);
    await writeDelete(c, this.#channel, this.#note(stream.id), chain, byId);
  }

  async sweep(): Promise<number> {
    if (this.#closed) return 0;
    const rows = (await this.#q(EXPIRED, [this.now()])) as Array<{ key: string }>;
    let n = 0;
    for (const { key } of rows) {
      await this.sync(key);
      const s = this.streams.streams.get(key);
      if (!s || s.softDeleted || !s.expired(this.now())) continue;
      await new Promise<void>((resolve) => this.delete(s, true, () => resolve()));
      n++;
    }
    return n;
  }

  // ---- the Backend half: reads of data that lives in the database

  write(_batch: Write[], done: WriteDone): void {
    done(
      new StorageError('ERR_STORAGE_FAILED', 'postgres changes go through the shared store'),
      undefined,
    );
  }

  read(parts: Part[]): Promise<Buffer[]> {
    return this.#tracked(() => readParts(this.#q, parts));
  }

  table(owner: Stream, i: number, count: number): Uint32Array {
    const t = this.#tables.get(owner.id, owner.index.addr(i));
    if (!t || t.length !== count)
      throw new StorageError('ERR_STORAGE_CORRUPT', `stream ${owner.id} has no message table`);
    return t;
  }

  loadIndex(stream: Stream): void {
    stream.loaded = true;
  }

  dropped(stream: Stream): void {
    this.#tables.drop(stream.id);
  }

  get memory(): number {
    return this.#tables.bytes;
  }

  get storedInMemory(): number {
    return 0;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#access.close();
    if (this.#inFlight > 0)
      await new Promise<void>((resolve) => {
        this.#idle = resolve;
      });
    await Promise.all([this.pool.close(), this.listener.close()]);
  }
}
